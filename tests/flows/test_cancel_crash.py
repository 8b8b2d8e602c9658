"""cancel_flow survives a server crash: `ff serve` is killed (SIGKILL) while it
dispatches member cancels in the background, restarted, and the cancel_reconciler
finishes the job from the flow's durable backlog."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
import trio

from ff.client import ApiClient
from ff.core.flow_records import AddExecutionToFlowArgs, CancelFlowArgs
from ff.core.records import CreateExecutionArgs
from ff.embedded import EmbeddedServer, free_loopback_port
from tests.api.test_serve import FF, serve_env, stop, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.faults]

MEMBERS = 400


def start(tmp_path: Path, valkey: EmbeddedServer, port: int) -> subprocess.Popen[bytes]:
    env = serve_env(tmp_path / "data", FF_LISTEN_ADDR=f"127.0.0.1:{port}",
                    FF_VALKEY_URL=valkey.url, FF_WAITPOINT_HMAC_SECRET="ab" * 16,
                    FF_CANCEL_FLOW_GRACE_MS="0", FF_CANCEL_RECONCILER_INTERVAL_S="1")
    return subprocess.Popen([*FF, "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp_path)


async def test_every_member_ends_cancelled_after_a_crash_mid_dispatch(
        tmp_path: Path, fault_server: EmbeddedServer) -> None:
    port = free_loopback_port()
    url = f"http://127.0.0.1:{port}"
    process = start(tmp_path, fault_server, port)
    try:
        await wait_healthy(url, process)
        async with ApiClient(url) as client:
            created = await client.create_flow()
            assert created.Created is not None
            flow_id = created.Created.flow_id
            ids = []
            for i in range(MEMBERS):
                added = await client.add_execution_to_flow(flow_id, AddExecutionToFlowArgs(
                    execution=CreateExecutionArgs(execution_kind=f"m{i}")))
                ids.append(added.execution_id)
            scheduled = await client.cancel_flow(flow_id, CancelFlowArgs(reason="crash test"))
            process.send_signal(signal.SIGKILL)
        assert scheduled.CancellationScheduled is not None
        assert scheduled.CancellationScheduled.member_count == MEMBERS
    finally:
        process.kill()
        process.wait()

    process = start(tmp_path, fault_server, port)
    try:
        await wait_healthy(url, process)
        async with ApiClient(url) as client:
            with trio.fail_after(20):
                while (await client.get_flow(flow_id)).counts != {"cancelled": MEMBERS}:
                    await trio.sleep(0.2)
            info = await client.get_execution(ids[-1])
            assert info.public_state == "cancelled"
    finally:
        code, stderr = await stop(process)
    assert code == 0, stderr
