"""Waitpoints over HTTP with a real worker: the approval round trip, the token route's
caching headers, bad tokens, rotation, the CLI, and secrets kept out of the logs."""

from __future__ import annotations

import json
import logging

import pytest
import trio

from ff.cli import main
from ff.client import ApiClient, HttpStatusError
from ff.core.records import CreateExecutionArgs
from ff.worker import Worker
from tests.api.conftest import Api, running_api, writes
from tests.engine.conftest import SECRET

from .test_cli import keep_root_logging  # noqa: F401  (autouse fixture)


def approval_worker(api: Api, seen: list) -> Worker:
    worker = Worker(api.server.config.valkey_url, worker_id="approver", lease_ttl_ms=5_000,
                    grace_period_s=2.0)

    @worker.handler("publish")
    async def publish(task, payload):
        seen.append((task.attempt_type, task.attempt_index, task.resume_signals))
        if not task.resume_signals:
            await task.suspend({"required_signal_names": ["approve", "reject"]},
                               timeout_ms=60_000, reason_code="waiting_for_approval")
            return None
        decision = task.resume_signals[0]
        return {"decision": decision.name, "note": decision.json()}

    return worker


async def wait_state(client: ApiClient, eid: str, *states: str) -> str:
    with trio.fail_after(10):
        while (state := await client.get_execution_state(eid)) not in states:
            await trio.sleep(0.01)
    return state


async def test_approval_round_trip_over_http(api: Api, client: ApiClient,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list = []
    worker = approval_worker(api, seen)
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: worker.run(handle_signals=False,
                                                         task_status=task_status))
        created = await client.create_execution(
            CreateExecutionArgs(execution_kind="publish", input_payload="draft"))
        eid = created.execution_id
        await wait_state(client, eid, "suspended")
        [pending] = await client.pending_waitpoints(eid)
        assert pending.state == "active"
        assert sorted(pending.required_signal_names) == ["approve", "reject"]
        response = await client.request(
            "GET", f"/v1/executions/{eid}/waitpoints/{pending.waitpoint_id}/token")
        assert response.status == 200
        assert response.headers.get("cache-control") == "no-store"
        token = json.loads(response.body)["token"]
        assert token.startswith(f"{pending.token_kid}:{pending.token_fingerprint}")
        # A tampered token changes nothing.
        tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
        before = await writes(api)
        with pytest.raises(HttpStatusError) as bad:
            await client.signal(eid, waitpoint_id=pending.waitpoint_id, name="approve",
                                token=tampered)
        assert bad.value.status == 400 and "invalid_token" in bad.value.error
        assert await writes(api) == before
        result = await client.signal(eid, waitpoint_id=pending.waitpoint_id, name="approve",
                                     token=token, payload={"by": "alice"},
                                     source_type="human", source_identity="alice")
        assert result.effect == "resume_condition_satisfied"
        await wait_state(client, eid, "completed")
        answer = json.loads(await client.get_execution_result(eid))
        assert answer == {"decision": "approve", "note": {"by": "alice"}}
        worker.stop()
    (first_type, first_index, _), (second_type, second_index, signals) = seen
    assert (first_type, second_type) == ("initial", "resumed")
    assert first_index == second_index
    assert [s.source_identity for s in signals] == ["alice"]
    # The token route 404s once the waitpoint closed, with no-store as well.
    response = await client.request(
        "GET", f"/v1/executions/{eid}/waitpoints/{pending.waitpoint_id}/token")
    assert response.status == 404 and response.headers.get("cache-control") == "no-store"
    assert await client.waitpoint_token(eid, pending.waitpoint_id) is None
    # Rotation through the route.
    rotated = await client.rotate_waitpoint_secret("k2", "cd" * 32)
    assert rotated.rotated == api.server.config.partitions.num_flow_partitions
    with pytest.raises(HttpStatusError) as invalid:
        await client.rotate_waitpoint_secret("bad:kid", "cd" * 32)
    assert invalid.value.status == 400
    with pytest.raises(HttpStatusError) as conflict:
        await client.rotate_waitpoint_secret("k2", "ef" * 32)
    assert conflict.value.status == 409
    # No secret, and no full token, in any log line.
    for record in caplog.records:
        line = record.getMessage() + json.dumps(record.__dict__, default=str)
        for secret in (SECRET, "cd" * 32, "ef" * 32, token.split(":")[1]):
            assert secret not in line


async def test_bad_signal_requests(api: Api, client: ApiClient) -> None:
    eid = (await client.create_execution(CreateExecutionArgs(execution_kind="x"))).execution_id
    before = await writes(api)
    with pytest.raises(HttpStatusError) as unknown:
        await client.signal(eid, waitpoint_id="00000000-0000-4000-8000-000000000000",
                            name="approve", token="k1:" + "0" * 40)
    assert unknown.value.status == 400 and "invalid_token" in unknown.value.error
    assert await client.pending_waitpoints(eid) == []
    with pytest.raises(HttpStatusError) as missing:
        await client.pending_waitpoints("{fp:1}:00000000-0000-4000-8000-000000000000")
    assert missing.value.status == 404
    response = await client.request("POST", f"/v1/executions/{eid}/signal",
                                    json={"waitpoint_id": "w"})
    assert response.status == 400 and json.loads(response.body)["error"]
    assert await writes(api) == before


async def test_rotation_is_single_flight(api: Api, client: ApiClient) -> None:
    async with api.server._rotation_gate:
        with pytest.raises(HttpStatusError) as busy:
            await client.rotate_waitpoint_secret("k9", "ab" * 32)
    assert busy.value.status == 429 and busy.value.retryable


async def test_ff_signal_and_rotate_secret_commands(server_url: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    async with running_api(server_url) as api, ApiClient(api.url) as client:
        seen: list = []
        worker = approval_worker(api, seen)
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: worker.run(handle_signals=False,
                                                             task_status=task_status))
            eid = (await client.create_execution(
                CreateExecutionArgs(execution_kind="publish"))).execution_id
            await wait_state(client, eid, "suspended")
            code = await trio.to_thread.run_sync(main, [
                "signal", eid, "--name", "approve", "--payload", '{"ok": true}',
                "--server", api.url])
            assert code == 0
            await wait_state(client, eid, "completed")
            worker.stop()
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["effect"] == "resume_condition_satisfied"
        code = await trio.to_thread.run_sync(main, [
            "admin", "rotate-secret", "--kid", "k7", "--server", api.url])
        assert code == 0
        printed = capsys.readouterr().out
        assert json.loads(printed)["new_kid"] == "k7"
        current, _ = await api.server.list_waitpoint_hmac_kids(0)
        assert current == "k7"
        code = await trio.to_thread.run_sync(main, [
            "signal", eid, "--name", "approve", "--server", api.url])
        assert code == 1
