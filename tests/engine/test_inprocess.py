"""A trio program uses the whole engine in-process: no HTTP, scanners running."""

from __future__ import annotations

import pytest
import trio

from ff.config import ConfigError, ServerConfig
from ff.core.policy import ExecutionPolicy, FixedBackoff, RetryPolicy
from ff.core.records import CreateExecutionArgs
from ff.script import execution as fns
from ff.serve import ServeOptions, load_config
from ff.server import Server
from tests.engine.conftest import SECRET, claim, engine_config, fence

pytestmark = [pytest.mark.compat, pytest.mark.cluster]


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


async def test_from_env_configures_an_in_process_server_like_ff_serve(
        server_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing Valkey needs its URL and the HMAC secret; `ServerConfig.from_env()` reads
    them (and every other FF_* variable) exactly as `ff serve` does."""
    for name, value in {"FF_VALKEY_URL": server_url, "FF_WAITPOINT_HMAC_SECRET": SECRET,
                        "FF_LANES": "default,mail", "FF_FLOW_PARTITIONS": "4",
                        "FF_BUDGET_PARTITIONS": "2", "FF_QUOTA_PARTITIONS": "2"}.items():
        monkeypatch.setenv(name, value)
    config = ServerConfig.from_env()
    assert config == load_config(ServeOptions())
    async with Server.running(config) as server:
        assert server.embedded is None and server.config.lanes == ("default", "mail")
        created = await server.create_execution(
            CreateExecutionArgs(execution_kind="email", lane_id="mail"))
        assert await server.get_execution_state(created.execution_id) == "waiting"

    monkeypatch.delenv("FF_WAITPOINT_HMAC_SECRET")
    with pytest.raises(ConfigError, match="FF_WAITPOINT_HMAC_SECRET"):
        async with Server.running(ServerConfig.from_env()):
            pass
