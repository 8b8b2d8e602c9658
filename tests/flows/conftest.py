"""Helpers for flow tests: a Server with the completion listener on (scanners off), and
a way to build, run and watch small DAGs through the in-process API."""

from __future__ import annotations

import pytest
import trio

from ff.core.flow_records import (
    AddExecutionToFlowArgs,
    ApplyDependencyToChildArgs,
    CreateFlowArgs,
    EdgeGroupPolicyArgs,
    StageDependencyEdgeArgs,
)
from ff.core.records import CreateExecutionArgs
from ff.script import execution as execution_fns
from ff.server import Server
from tests.engine.conftest import claim, engine_config, fence


@pytest.fixture
async def server(server_url: str):
    async with Server.running(engine_config(server_url)) as server:
        yield server


class Dag:
    """A flow under construction: members by name, the revision threaded through."""

    def __init__(self, server: Server, flow_id: str) -> None:
        self.server = server
        self.flow_id = flow_id
        self.ids: dict[str, str] = {}
        self.revision = 0

    @classmethod
    async def create(cls, server: Server) -> Dag:
        created = await server.create_flow(CreateFlowArgs(flow_kind="test"))
        assert created.Created is not None
        return cls(server, created.Created.flow_id)

    async def node(self, name: str, *, hold: bool = False, **fields: object) -> str:
        added = await self.server.add_execution_to_flow(self.flow_id, AddExecutionToFlowArgs(
            execution=CreateExecutionArgs(execution_kind=name, **fields), hold=hold))
        self.revision += 1
        self.ids[name] = added.execution_id
        return added.execution_id

    async def join(self, name: str, policy: str, k: int | None = None,
                   on_satisfied: str | None = None) -> None:
        await self.server.set_edge_group_policy(self.flow_id, self.ids[name], EdgeGroupPolicyArgs(
            policy=policy, k=k, on_satisfied=on_satisfied))  # type: ignore[arg-type]

    async def edge(self, up: str, down: str, *, data: bool = False) -> str:
        staged = await self.server.stage_dependency_edge(self.flow_id, StageDependencyEdgeArgs(
            upstream_execution_id=self.ids[up], downstream_execution_id=self.ids[down],
            expected_graph_revision=self.revision, data_passing_ref="result" if data else None))
        assert staged.Staged is not None
        self.revision = staged.Staged.new_graph_revision
        await self.server.apply_dependency_to_child(self.flow_id, ApplyDependencyToChildArgs(
            edge_id=staged.Staged.edge_id, upstream_execution_id=self.ids[up],
            downstream_execution_id=self.ids[down], graph_revision=self.revision))
        return staged.Staged.edge_id

    async def state(self, name: str) -> str:
        return await self.server.get_execution_state(self.ids[name])

    async def wait_for(self, name: str, state: str, timeout: float = 5) -> None:
        with trio.fail_after(timeout):
            while (current := await self.state(name)) != state:
                await trio.sleep(0.01)
        assert current == state

    async def run(self, name: str, *, result: bytes = b"", fail: bool = False) -> bytes:
        """Claims `name` (which must be claimable) and completes or fails it; returns the
        payload it ran with."""
        eid = self.ids[name]
        held = []
        with trio.fail_after(5):
            while True:
                lease = await claim(self.server)
                assert lease is not None, f"{name} is not claimable"
                if lease.execution_id == eid:
                    break
                held.append(lease)
        for other in held:
            await execution_fns.delay_execution(self.server.library, other.execution_id,
                                                delay_until=0, **fence(other))
        if fail:
            await execution_fns.fail_execution(self.server.library, eid, reason="boom",
                                               category="test", **fence(lease))
        else:
            await execution_fns.complete_execution(self.server.library, eid, result=result,
                                                   **fence(lease))
        return lease.payload
