"""Executions counted per lane and public state: Server, HTTP routes and `ff admin status`."""

from __future__ import annotations

import subprocess

import pytest
import trio

from ff.client import ApiClient
from ff.core.policy import ExecutionPolicy
from ff.script import execution as fns
from ff.script import scheduling as scheduling_fns
from tests.api.conftest import Api
from tests.api.test_cli import ff_command
from tests.engine.conftest import claim, fence, submit

pytestmark = pytest.mark.compat


async def _populate(api: Api) -> None:
    """2 completed, 1 failed, 1 cancelled, 1 active, 1 quota-blocked, 1 delayed, 2 waiting."""
    server = api.server
    for _ in range(4):
        await submit(server)
    for outcome in ("complete", "complete", "fail"):
        lease = await claim(server)
        assert lease is not None
        if outcome == "complete":
            await fns.complete_execution(server.library, lease.execution_id, **fence(lease))
        else:
            await fns.fail_execution(server.library, lease.execution_id, **fence(lease))
    assert await claim(server) is not None
    await fns.cancel_execution(server.library, await submit(server), reason="x",
                               source="operator_override")
    quota = await submit(server)
    await scheduling_fns.block_for_admission(server.library, quota, "waiting_for_quota")
    await submit(server, delay_until=2_000_000_000_000)
    await submit(server)
    await submit(server, lane_id="mail")
    await submit(server, lane_id="mail", policy=ExecutionPolicy(max_replay_count=1))


EXPECTED = {"waiting": 1, "delayed": 1, "rate_limited": 1, "waiting_children": 0,
            "active": 1, "suspended": 0, "resumable": 0, "completed": 2, "failed": 1,
            "cancelled": 1, "expired": 0, "skipped": 0}


async def test_counts_per_state_from_the_indexes(api: Api, client: ApiClient) -> None:
    await _populate(api)
    assert await api.server.count_executions("default") == EXPECTED
    assert await client.lane_counts("default") == EXPECTED
    assert sorted(await client.lanes()) == ["default", "mail"]
    mail = await client.lane_counts("mail")
    assert mail["waiting"] == 2 and sum(mail.values()) == 2


async def test_replay_and_purge_keep_the_terminal_counts(api: Api) -> None:
    server = api.server
    eid = await submit(server, policy=ExecutionPolicy(max_replay_count=1))
    lease = await claim(server)
    assert lease is not None
    await fns.complete_execution(server.library, eid, **fence(lease))
    assert (await server.count_executions("default"))["completed"] == 1
    await server.replay_execution(eid)
    counts = await server.count_executions("default")
    assert (counts["completed"], counts["waiting"]) == (0, 1)
    lease = await claim(server)
    assert lease is not None
    await fns.fail_execution(server.library, eid, **fence(lease))
    assert (await server.count_executions("default"))["failed"] == 1
    await fns.purge_execution(server.library, eid, lane_id="default", default_retention_ms=0)
    assert sum((await server.count_executions("default")).values()) == 0


async def test_a_bad_lane_is_a_400(client: ApiClient) -> None:
    response = await client.request("GET", "/v1/lanes/%20bad%01/counts")
    assert response.status == 400


async def test_admin_status_prints_the_counts_table(api: Api) -> None:
    await _populate(api)
    url = api.server.config.valkey_url or ""
    done = await trio.to_thread.run_sync(lambda: subprocess.run(
        ff_command("admin", "status", "--valkey-url", url),
        capture_output=True, text=True, timeout=30))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = lines.index("executions per lane and state:")
    columns = lines[header + 1].split()
    assert columns[0] == "lane" and columns[1:] == list(EXPECTED)
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 2:]}
    assert rows["default"] == [str(n) for n in EXPECTED.values()]
