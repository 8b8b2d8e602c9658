"""Workers as real processes: killed with SIGKILL mid-task (the execution is reclaimed
and finished elsewhere; the dead attempt can no longer complete), drained with SIGTERM,
and the command line's own checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from ff.core.errors import ContentionError, ExecutionNotActiveError, StateConflictError
from ff.script import execution as execution_fns
from ff.server import Server
from ff.worker import ClaimedTask
from ff.worker.cli import main
from tests.worker.conftest import core_field, make_worker, running, submit, wait_for_state

ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def worker_process(server_url: str, log_path: Path, *flags: str
                         ) -> AsyncIterator[trio.Process]:
    """`python -m ff.worker.cli tests.worker.procworker` with its log in `log_path`, at
    debug level (the per-task lines)."""
    with log_path.open("wb") as log_file:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "ff.worker.cli", "tests.worker.procworker",
             "--valkey-url", server_url, *flags],
            cwd=ROOT, stdout=log_file, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "FF_LOG_LEVEL": "debug"})
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def wait_for_log(log_path: Path, text: str, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while text not in log_path.read_text():
            await trio.sleep(0.02)


async def test_killed_worker_is_reclaimed_and_its_attempt_is_fenced_off(
        server: Server, server_url: str, tmp_path: Path) -> None:
    eid = await submit(server, "hang")
    async with worker_process(server_url, tmp_path / "w.log", "--lease-ttl-ms", "500") as proc:
        await wait_for_state(server, eid, "active")
        dead = {f: await core_field(server, eid, f) for f in
                ("current_lease_id", "current_lease_epoch", "current_attempt_id")}
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    fence = {"lease_id": dead["current_lease_id"], "lease_epoch": dead["current_lease_epoch"],
             "attempt_id": dead["current_attempt_id"]}
    scanner = server.engine.scanner("lease_expiry")
    with trio.fail_after(5):  # nothing renews it now: expired within the 500 ms TTL
        while await core_field(server, eid, "ownership_state") != "lease_expired_reclaimable":
            await scanner.run_once()
            await trio.sleep(0.05)

    second = make_worker(server_url, worker_id="rescuer")
    stale: list[BaseException] = []

    @second.handler("hang")
    async def finish(task: ClaimedTask, payload: object) -> str:
        try:  # the dead worker's attempt, replayed now, loses to the live lease
            await execution_fns.complete_execution(server.library, eid, result=b"x", **fence)
        except ContentionError as exc:
            stale.append(exc)
        return f"rescued attempt {task.attempt_index} ({task.attempt_type})"

    async with running(second):
        await wait_for_state(server, eid, "completed")
    assert [getattr(exc, "code", None) for exc in stale] == ["stale_lease"]
    assert await server.get_execution_result(eid) == b"rescued attempt 1 (reclaim)"
    assert int(await core_field(server, eid, "current_lease_epoch")) > int(fence["lease_epoch"])
    with pytest.raises((ExecutionNotActiveError, StateConflictError)):
        await execution_fns.complete_execution(server.library, eid, result=b"x", **fence)


async def test_sigterm_drains_in_flight_work_and_claims_nothing_new(
        server: Server, server_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "w.log"
    first = await submit(server, "slow", input_payload='{"seconds": 0.5}',
                         payload_encoding="json")
    async with worker_process(server_url, log_path) as proc:
        await wait_for_state(server, first, "active")
        proc.send_signal(signal.SIGTERM)
        await wait_for_log(log_path, "draining")
        await trio.sleep(0.05)  # claim calls already in flight may still land (ms)
        later = await submit(server, "slow", input_payload='{"seconds": 0}',
                             payload_encoding="json")
        with trio.fail_after(10):
            assert await proc.wait() == 0
    log = log_path.read_text()
    assert await server.get_execution_state(first) == "completed", log
    assert await server.get_execution_result(first) == b'{"slept":0.5}'
    assert await server.get_execution_state(later) == "waiting"
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    tasks = [(e["msg"], e["execution_id"]) for e in events if e["msg"].startswith("task ")]
    assert tasks == [("task claimed", first), ("task finished", first)], log
    finished = next(e for e in events if e["msg"] == "task finished")
    assert (finished["kind"], finished["outcome"]) == ("slow", "completed")


def test_cli_usage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FF_VALKEY_URL", raising=False)
    monkeypatch.delenv("FF_DATA_DIR", raising=False)
    assert main(["tests.worker.procworker:nope"]) == 2
    assert "is not an ff.worker.Worker" in capsys.readouterr().err
    assert main(["no_such_module_anywhere"]) == 2
    assert main(["tests.worker.procworker"]) == 2
    assert "no Valkey URL" in capsys.readouterr().err


def test_cli_flags_override_the_module_and_find_the_embedded_url(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from ff.worker import default_valkey_url
    from ff.worker.cli import add_worker_parser, overrides

    parser = argparse.ArgumentParser()
    add_worker_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["worker", "m:w", "--lanes", "a, b", "--capabilities", "gpu",
                              "--concurrency", "3", "--worker-id", "x"])
    assert overrides(args) == {"lanes": ["a", "b"], "capabilities": ["gpu"],
                               "max_concurrent": 3, "worker_id": "x"} | (
        {"api_token": os.environ["FF_API_TOKEN"]} if os.environ.get("FF_API_TOKEN") else {})
    with pytest.raises(SystemExit):
        parser.parse_args(["worker", "m", "--concurrency", "0"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FF_VALKEY_URL", raising=False)
    monkeypatch.delenv("FF_DATA_DIR", raising=False)
    assert default_valkey_url() is None
    (tmp_path / ".ff").mkdir()
    (tmp_path / ".ff" / "valkey.url").write_text("redis://127.0.0.1:7777/0\n")
    assert default_valkey_url() == "redis://127.0.0.1:7777/0"
    monkeypatch.setenv("FF_VALKEY_URL", "redis://elsewhere:6379/0")
    assert default_valkey_url() == "redis://elsewhere:6379/0"
