"""Fixtures for worker tests: a real in-process server (scanners off unless a test turns
them on) and a helper that runs a Worker's `run()` loop in a nursery until told to stop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from ff.core.keys import ExecKeys
from ff.server import Server
from ff.worker import Worker
from tests.engine.conftest import core_field, engine_config, submit

__all__ = ["assert_each_ran_and_completed_once", "core_field", "engine_config", "running",
           "submit", "wait_for_state"]


@pytest.fixture
async def server(server_url: str) -> AsyncIterator[Server]:
    async with Server.running(engine_config(server_url)) as server:
        yield server


def make_worker(valkey_url: str, **settings: object) -> Worker:
    settings.setdefault("worker_id", "w")
    settings.setdefault("lease_ttl_ms", 5_000)
    settings.setdefault("grace_period_s", 5.0)
    return Worker(valkey_url, **settings)  # type: ignore[arg-type]


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """`worker.run()` in the background for the block; drained (stop) when it exits."""
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: worker.run(handle_signals=False,
                                                         task_status=task_status))
        try:
            yield worker
        finally:
            worker.stop()


async def wait_for_state(server: Server, eid: str, *states: str, timeout: float = 10.0) -> str:
    """Polls until the execution's public_state is one of `states`."""
    with trio.fail_after(timeout):
        while True:
            state = await server.get_execution_state(eid)
            if state in states:
                return state
            await trio.sleep(0.01)


async def assert_each_ran_and_completed_once(server: Server, eids: list[str],
                                             runs: dict[str, int]) -> None:
    """Every execution ran once (`runs`: handler calls per id) and completed on its
    first attempt."""
    assert set(runs) == set(eids) and set(runs.values()) == {1}
    pipe = server.client.pipeline()
    for eid in eids:
        pipe.execute_command("HMGET", ExecKeys(eid).core, "public_state", "total_attempt_count")
    rows = await pipe.run(raise_on_error=True)
    assert {(state.decode(), count.decode()) for state, count in rows} == {("completed", "1")}
