"""A trio program uses the whole engine in-process: no HTTP, scanners running."""

from __future__ import annotations

import pytest
import trio

from ff.core.policy import ExecutionPolicy, FixedBackoff, RetryPolicy
from ff.core.records import CreateExecutionArgs
from ff.script import execution as fns
from ff.server import Server
from tests.engine.conftest import claim, engine_config, fence

pytestmark = pytest.mark.compat


async def test_in_process_program_runs_jobs_with_scanners(server_url: str) -> None:
    config = engine_config(server_url, scanners_enabled=True)
    async with Server.running(config) as server:
        flaky = ExecutionPolicy(retry_policy=RetryPolicy(max_retries=1, backoff=FixedBackoff(20)))
        ids = []
        for n in range(10):
            created = await server.create_execution(CreateExecutionArgs(
                execution_kind="square", input_payload=str(n), policy=flaky))
            ids.append(created.execution_id)
        failed_once: set[str] = set()
        with trio.fail_after(10):
            while len([s for s in [await server.get_execution_state(e) for e in ids]
                       if s == "completed"]) < len(ids):
                lease = await claim(server)
                if lease is None:
                    await trio.sleep(0.02)
                    continue
                if lease.execution_id not in failed_once:
                    failed_once.add(lease.execution_id)
                    await fns.fail_execution(server.library, lease.execution_id,
                                             reason="first try", **fence(lease))
                    continue
                value = int(lease.payload)
                await fns.complete_execution(server.library, lease.execution_id,
                                             result=str(value * value).encode(), **fence(lease))
        results = [await server.get_execution_result(e) for e in ids]
        assert results == [str(n * n).encode() for n in range(10)]
