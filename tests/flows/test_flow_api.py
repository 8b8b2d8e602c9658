"""Flow API on a real server: bad input changes nothing, cancel policies, wait mode."""

from __future__ import annotations

import pytest
import trio

from ff.core.errors import (
    ConflictError,
    ContentionError,
    NotFoundError,
    ValidationError,
)
from ff.core.flow_records import (
    AddExecutionToFlowArgs,
    ApplyDependencyToChildArgs,
    CancelFlowArgs,
    CreateFlowArgs,
    EdgeGroupPolicyArgs,
    StageDependencyEdgeArgs,
)
from ff.core.ids import ExecutionId
from ff.core.keys import ExecKeys, FlowKeys
from ff.core.records import CreateExecutionArgs
from ff.server import Server
from tests.api.conftest import writes
from tests.flows.conftest import Dag

pytestmark = pytest.mark.compat


class _Writes:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def count(self) -> int:
        return await writes(self)  # type: ignore[arg-type]


async def test_bad_edges_and_policies_are_refused_without_writes(server: Server) -> None:
    dag = await Dag.create(server)
    for name in ("a", "b", "c"):
        await dag.node(name)
    await dag.edge("a", "b")
    await dag.edge("b", "c")
    probe = _Writes(server)
    before = await probe.count()

    def stage(up: str, down: str, revision: int | None = None) -> StageDependencyEdgeArgs:
        return StageDependencyEdgeArgs(
            upstream_execution_id=dag.ids.get(up, up), downstream_execution_id=dag.ids[down],
            expected_graph_revision=dag.revision if revision is None else revision)

    with pytest.raises(ConflictError, match="cycle_detected"):
        await server.stage_dependency_edge(dag.flow_id, stage("c", "a"))
    with pytest.raises(ConflictError, match="self_referencing_edge"):
        await server.stage_dependency_edge(dag.flow_id, stage("a", "a"))
    with pytest.raises(ConflictError, match="dependency_already_exists"):
        await server.stage_dependency_edge(dag.flow_id, stage("a", "b"))
    with pytest.raises(ContentionError, match="stale_graph_revision"):
        await server.stage_dependency_edge(dag.flow_id, stage("a", "c", dag.revision - 1))
    outsider = ExecutionId.parse(ExecutionId.parse(dag.ids["a"]).tag
                                 + ":00000000-0000-4000-8000-000000000000")
    with pytest.raises(ValidationError, match="execution_not_in_flow"):
        await server.stage_dependency_edge(dag.flow_id, stage(outsider, "c"))
    with pytest.raises(ValidationError, match="quorum needs k"):
        await server.set_edge_group_policy(dag.flow_id, dag.ids["c"], EdgeGroupPolicyArgs(
            policy="quorum", k=0, on_satisfied="let_run"))
    with pytest.raises(ConflictError, match="edge_group_policy_already_fixed"):
        await server.set_edge_group_policy(dag.flow_id, dag.ids["c"], EdgeGroupPolicyArgs(
            policy="any_of", on_satisfied="let_run"))
    with pytest.raises(ValidationError, match="invalid_dependency"):
        await server.apply_dependency_to_child(dag.flow_id, ApplyDependencyToChildArgs(
            edge_id="00000000-0000-4000-8000-000000000001", upstream_execution_id=dag.ids["a"],
            downstream_execution_id=dag.ids["c"], graph_revision=dag.revision))
    with pytest.raises(NotFoundError, match="flow_not_found"):
        await server.cancel_flow("00000000-0000-4000-8000-000000000002", CancelFlowArgs())
    assert await probe.count() == before


async def test_members_must_live_on_the_flow_partition(server: Server) -> None:
    dag = await Dag.create(server)
    flow_tag = ExecutionId.parse(await dag.node("x")).tag
    partitions = server.partition_config.num_flow_partitions
    other = ExecutionId.mint((int(flow_tag[4:-1]) + 1) % partitions)
    await server.create_execution(CreateExecutionArgs(execution_kind="solo", execution_id=other))
    with pytest.raises(ValidationError, match="partition"):
        await server.add_execution_to_flow(dag.flow_id, AddExecutionToFlowArgs(
            execution_id=other))


async def test_adding_twice_and_creating_twice_are_idempotent(server: Server) -> None:
    flow = await server.create_flow(CreateFlowArgs(flow_id="6f1c7d3e-0a51-4d2b-9b5e-2f1d1c0a9e11"))
    again = await server.create_flow(CreateFlowArgs(flow_id="6f1c7d3e-0a51-4d2b-9b5e-2f1d1c0a9e11"))
    assert flow.Created is not None and again.AlreadySatisfied is not None
    dag = Dag(server, flow.Created.flow_id)
    eid = await dag.node("a")
    repeat = await server.add_execution_to_flow(dag.flow_id, AddExecutionToFlowArgs(
        execution_id=eid))
    assert repeat.AlreadyMember is not None and repeat.AlreadyMember.node_count == 1


async def test_cancel_wait_with_200_members_returns_every_id(server: Server) -> None:
    dag = await Dag.create(server)
    ids = [await dag.node(f"n{i}") for i in range(200)]
    result = await server.cancel_flow_wait(dag.flow_id, CancelFlowArgs(reason="stop"))
    assert result.Cancelled is not None
    assert sorted(result.Cancelled.member_execution_ids) == sorted(ids)
    info = await server.get_flow(dag.flow_id)
    assert info.counts == {"cancelled": 200} and info.public_flow_state == "cancelled"
    repeat = await server.cancel_flow(dag.flow_id, CancelFlowArgs(
        cancellation_policy="flow_only"))
    assert repeat.Cancelled is not None
    assert repeat.Cancelled.cancellation_policy == "cancel_all"
    with pytest.raises(Exception, match="flow_already_terminal"):
        await dag.node("late")


async def test_cancel_pending_cancels_only_members_that_have_not_started(
        server: Server) -> None:
    dag = await Dag.create(server)
    await dag.node("running")
    await dag.node("queued", hold=True)
    from tests.engine.conftest import claim
    lease = await claim(server)
    assert lease is not None and lease.execution_id == dag.ids["running"]
    result = await server.cancel_flow(dag.flow_id, CancelFlowArgs(
        cancellation_policy="cancel_pending"))
    assert result.CancellationScheduled is not None
    await dag.wait_for("queued", "cancelled")
    assert await dag.state("running") == "active"


async def test_async_cancel_dispatches_in_the_background(server: Server) -> None:
    dag = await Dag.create(server)
    for i in range(20):
        await dag.node(f"n{i}")
    result = await server.cancel_flow(dag.flow_id, CancelFlowArgs())
    assert result.CancellationScheduled is not None
    assert result.CancellationScheduled.member_count == 20
    with trio.fail_after(5):
        while (await server.get_flow(dag.flow_id)).counts != {"cancelled": 20}:
            await trio.sleep(0.01)


async def test_cancel_wait_reports_the_member_it_could_not_cancel(server: Server) -> None:
    dag = await Dag.create(server)
    good = [await dag.node(f"ok{i}") for i in range(3)]
    broken = await dag.node("broken")
    keys = ExecKeys(broken)
    await server.client.execute("HSET", keys.core, "lifecycle_phase", "active",
                                "ownership_state", "leased", "current_attempt_index", "1")
    await server.client.execute("SET", keys.attempt(1), "not a hash")
    result = await server.cancel_flow_wait(dag.flow_id, CancelFlowArgs(reason="partial"))
    assert result.PartiallyCancelled is not None
    assert result.PartiallyCancelled.failed_member_execution_ids == [broken]
    assert sorted(result.PartiallyCancelled.member_execution_ids) == sorted([*good, broken])
    assert {await server.get_execution_state(e) for e in good} == {"cancelled"}
    owed = await server.client.execute("SMEMBERS", FlowKeys(
        dag.flow_id, ExecutionId.parse(broken).tag).pending_cancels)
    assert [m.decode() for m in owed] == [broken]


async def test_flow_tags_and_the_projector(server: Server) -> None:
    dag = await Dag.create(server)
    await dag.node("a")
    keys = FlowKeys(dag.flow_id, ExecutionId.parse(dag.ids["a"]).tag)
    assert await server.set_flow_tags(dag.flow_id, {"app.owner": "team-a"}) == 1
    assert await server.client.execute("HGET", keys.tags, "app.owner") == b"team-a"
    with pytest.raises(ValidationError, match="invalid_tag_key"):
        await server.set_flow_tags(dag.flow_id, {"Bad Key": "x"})
    projector = server.engine.scanner("flow_projector")
    assert await projector.run_once() == 1
    summary = await server.client.execute("HGETALL", keys.summary)
    assert summary[b"public_flow_state"] == b"open" and summary[b"members_waiting"] == b"1"
    await dag.run("a")
    await projector.run_once()
    assert (await server.client.execute("HGET", keys.summary, "public_flow_state")) == \
        b"completed"
    flow_index = f"ff:idx:{keys.tag}:flow_index"
    assert await server.client.execute("SISMEMBER", flow_index, dag.flow_id) == 0


async def test_shutdown_drains_dispatch_then_aborts_it(server_url: str, monkeypatch) -> None:
    from ff.api import flows as flows_api
    from tests.engine.conftest import engine_config
    monkeypatch.setattr(flows_api, "DISPATCH_DRAIN_S", 0.2)
    finished: list[str] = []

    async def short() -> None:
        await trio.sleep(0.05)
        finished.append("short")

    async def endless() -> None:
        try:
            await trio.sleep(100)
        finally:
            finished.append("aborted")

    with trio.fail_after(5):
        async with Server.running(engine_config(server_url)) as server:
            assert server.dispatch_nursery is not None
            server.dispatch_nursery.start_soon(short)
            server.dispatch_nursery.start_soon(endless)
    assert finished == ["short", "aborted"]
