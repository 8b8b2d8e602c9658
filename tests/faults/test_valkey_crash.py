"""Valkey SIGKILLed under load and restarted from its append-only file, with `appendfsync
always` and `everysec`: every create the server acknowledged is there after the restart, and
the calls caught by the crash fail with a typed, retryable error.

A process kill leaves what Valkey wrote in the kernel's page cache, so with either setting
nothing acknowledged is lost here; `everysec` may lose up to the last second only when the
machine itself goes down before the fsync (a power cut, not simulated: docs/reliability.md)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from ff.core.errors import FFError
from ff.core.records import CreateExecutionArgs
from ff.embedded import EmbeddedServer
from ff.resp import errors as resp_errors
from ff.server import Server
from ff.transient import is_transient
from tests.engine.conftest import engine_config

pytestmark = [pytest.mark.faults, pytest.mark.slow]

SUBMITTERS = 16
RESULTS: dict[str, dict[str, int]] = {}


@pytest.mark.parametrize("fsync", ["always", "everysec"])
async def test_no_acknowledged_create_is_lost(tmp_path: Path, fsync: str) -> None:
    valkey = EmbeddedServer(tmp_path / "valkey", binary=os.environ.get("FF_TEST_SERVER") or None,
                            extra_args=("--appendfsync", fsync))
    await valkey.start()
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    try:
        async with Server.running(engine_config(valkey.url)) as server:

            async def submit(n: int) -> None:
                i = 0
                while True:
                    try:
                        created = await server.create_execution(CreateExecutionArgs(
                            execution_kind="durable", tags={"n": f"{n}.{i}"}))
                    except (FFError, resp_errors.RespError) as exc:
                        failures.append(exc)
                        return
                    acknowledged.append(created.execution_id)
                    i += 1

            with trio.fail_after(30):
                async with trio.open_nursery() as nursery:
                    for n in range(SUBMITTERS):
                        nursery.start_soon(submit, n)
                    while len(acknowledged) < 500:
                        await trio.sleep(0.01)
                    valkey.kill()
        assert len(failures) == SUBMITTERS
        assert all(is_transient(exc) for exc in failures), failures

        await valkey.start()
        async with Server.running(engine_config(valkey.url)) as server:
            missing = [eid for eid in acknowledged
                       if await server.get_execution_state(eid) != "waiting"]
    finally:
        await valkey.stop()
    RESULTS[fsync] = {"acknowledged": len(acknowledged), "missing": len(missing)}
    print(f"valkey crash, appendfsync {fsync}: {RESULTS[fsync]}")
    assert missing == []
