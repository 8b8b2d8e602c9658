"""The direct API (`async with Worker.connect(...)`, `claim_next`, `ClaimedTask`) and the
worker registry entry, against a real server; one test restarts Valkey mid-call."""

from __future__ import annotations

import pytest
import trio

import ff.worker
from ff.core.errors import FFError
from ff.core.keys import ExecKeys, WorkerKeys
from ff.embedded import EmbeddedServer
from ff.server import Server
from ff.worker import LeaseLostError, Worker
from tests.worker.conftest import core_field, engine_config, make_worker, submit


def test_public_surface() -> None:
    assert sorted(ff.worker.__all__) == [
        "ClaimedTask", "LeaseLostError", "Worker", "WorkerConfig", "default_valkey_url"]


def test_settings_are_checked() -> None:
    with pytest.raises(TypeError):
        Worker(lanes="default")  # type: ignore[arg-type]
    worker = Worker(worker_id="x", capabilities=["b", "a", "a"])
    assert worker.config.capabilities == ("a", "b")
    worker.configure(lanes=["x", "y"], max_concurrent=2)
    assert (worker.config.lanes, worker.config.max_concurrent) == (("x", "y"), 2)


async def test_bad_settings_fail_before_connecting() -> None:
    for settings in ({"lanes": []}, {"worker_id": "has space"}, {"max_concurrent": 0},
                     {"capabilities": ["a,b"]}, {"lanes": ["\x01"]}):
        with pytest.raises((ValueError, FFError)):
            async with Worker("redis://127.0.0.1:1/0", **settings):
                pass


async def server_now_ms(server: Server) -> int:
    seconds, micros = await server.client.execute("TIME")
    return int(seconds) * 1000 + int(micros) // 1000


async def test_claim_complete_and_task_facts(server: Server, server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="direct", lease_ttl_ms=5_000) as worker:
        assert await worker.claim_next() is None
        eid = await submit(server, "job", input_payload="in", tags={"app.x": "1"}, priority=7)
        task = await worker.claim_next()
        assert task is not None and worker.in_flight == 1
        assert (task.execution_id, task.kind, task.payload, task.tags, task.priority,
                task.attempt_index, task.lane_id) == (eid, "job", b"in", {"app.x": "1"}, 7, 0,
                                                       "default")
        await task.update_progress(40, "reading")
        assert await core_field(server, eid, "progress_pct") == "40"
        assert await core_field(server, eid, "progress_message") == "reading"
        with pytest.raises(TypeError):
            await task.complete(object())  # not encodable: the task is untouched
        assert not task.ended
        await task.complete({"out": [1]})
        assert task.ended and worker.in_flight == 0
        with pytest.raises(RuntimeError):
            await task.complete(b"again")
    assert await server.get_execution_state(eid) == "completed"
    assert await server.get_execution_result(eid) == b'{"out":[1]}'


async def test_claim_next_respects_max_concurrent(server: Server, server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="one", max_concurrent=1) as worker:
        await submit(server)
        await submit(server)
        held = await worker.claim_next()
        assert held is not None
        assert await worker.claim_next() is None  # work is waiting, but no slot is free
        await held.fail("giving up", "test", retryable=False)
        assert await worker.claim_next() is not None


async def test_lanes_are_claimed_round_robin(server: Server, server_url: str) -> None:
    for lane in ("a", "a", "b", "b"):
        await submit(server, lane_id=lane)
    async with Worker.connect(server_url, worker_id="rr", lanes=["a", "b"]) as worker:
        lanes = []
        for _ in range(4):
            task = await worker.claim_next()
            assert task is not None
            lanes.append(task.lane_id)
            await task.complete()
    assert lanes == ["a", "b", "a", "b"]


async def test_delay_resumes_the_same_attempt_and_cancel_ends_it(server: Server,
                                                                  server_url: str) -> None:
    eid = await submit(server)
    async with Worker.connect(server_url, worker_id="d") as worker:
        task = await worker.claim_next()
        assert task is not None
        await task.delay(await server_now_ms(server) - 1)  # already due: eligible at once
        assert task.ended and await server.get_execution_state(eid) == "waiting"
        again = await worker.claim_next()
        assert again is not None
        assert (again.attempt_index, again.attempt_type) == (0, "resumed")
        assert int(again.lease_epoch) == int(task.lease_epoch) + 1
        await again.cancel("not needed")
    assert await server.get_execution_state(eid) == "cancelled"


async def test_lease_scope_is_cancelled_when_the_lease_is_revoked(server: Server,
                                                                  server_url: str) -> None:
    eid = await submit(server)
    async with Worker.connect(server_url, worker_id="r", lease_ttl_ms=300) as worker:
        task = await worker.claim_next()
        assert task is not None
        await server.revoke_lease(eid)
        with trio.fail_after(2), task.lease_scope() as scope:
            await trio.sleep(10)
        assert scope.cancelled_caught
        assert task.lease_lost is not None and task.lease_lost.code == "lease_revoked"
        assert worker.in_flight == 0
        with pytest.raises(LeaseLostError):
            await task.complete()
        with task.lease_scope() as late:  # already lost: cancelled on entry
            await trio.sleep(10)
        assert late.cancelled_caught


async def test_leaving_the_block_gives_back_unfinished_tasks(server: Server,
                                                             server_url: str) -> None:
    eid = await submit(server)
    async with Worker.connect(server_url, worker_id="leaver") as worker:
        assert await worker.claim_next() is not None
    # Handed back: retried at once even without a retry policy, no retry used up.
    assert await server.get_execution_state(eid) == "waiting"
    assert await server.client.execute("HGET", ExecKeys(eid).core, "retry_count") == b"0"
    failure = await server.client.execute("HGET", ExecKeys(eid).attempt(0), "failure_category")
    assert failure == b"worker_shutdown"


async def test_registration_heartbeat_and_restart(server: Server, server_url: str) -> None:
    keys = WorkerKeys("default")
    alive, caps = keys.alive("inst-1"), keys.caps("inst-1")
    worker = make_worker(server_url, worker_id="reg", worker_instance_id="inst-1",
                         lease_ttl_ms=100, capabilities={"gpu", "eu"}, lanes=["b", "a"])
    async with worker:
        fields = await server.client.execute("HGETALL", caps)
        assert {k: fields[k] for k in (b"worker_id", b"lanes_csv", b"caps_csv")} == {
            b"worker_id": b"reg", b"lanes_csv": b"a,b", b"caps_csv": b"eu,gpu"}
        assert await server.client.execute("SISMEMBER", keys.index, "inst-1") == 1
        assert 0 < await server.client.execute("PTTL", alive) <= 1000
        await trio.sleep(1.2)  # longer than the key's TTL: only the heartbeat keeps it
        assert await server.client.execute("EXISTS", alive) == 1
        await server.client.execute("DEL", alive, caps)  # as if it had lapsed
        with trio.fail_after(2):
            while not await server.client.execute("EXISTS", alive):
                await trio.sleep(0.05)
    assert await server.client.execute("EXISTS", alive, caps) == 0
    assert await server.client.execute("SISMEMBER", keys.index, "inst-1") == 0
    async with make_worker(server_url, worker_id="reg", worker_instance_id="inst-1"):
        assert await server.client.execute("EXISTS", alive) == 1  # same id, at once


async def test_terminal_call_is_retried_across_a_valkey_restart(
        fault_server: EmbeddedServer) -> None:
    async with Server.running(engine_config(fault_server.url)) as server:
        eid = await submit(server)
        async with Worker.connect(fault_server.url, worker_id="f", lease_ttl_ms=10_000) as worker:
            task = await worker.claim_next()
            assert task is not None
            await fault_server.stop()  # clean stop: the append-only file keeps the lease
            async with trio.open_nursery() as nursery:
                nursery.start_soon(task.complete, b"after restart")
                await trio.sleep(0.3)
                assert not task.ended
                await fault_server.start()
            assert task.ended and task.lease_lost is None
        with trio.fail_after(5):
            while True:
                try:
                    state = await server.get_execution_state(eid)
                    break
                except OSError:
                    await trio.sleep(0.1)
        assert state == "completed"
        assert await server.get_execution_result(eid) == b"after restart"


async def test_lease_is_given_up_when_valkey_stays_away(
        fault_server: EmbeddedServer) -> None:
    """A worker never believes it holds a lease past its TTL: with Valkey gone for longer,
    the work under the lease is cancelled and the terminal call reports the loss."""
    async with Server.running(engine_config(fault_server.url)) as server:
        await submit(server)
        async with Worker.connect(fault_server.url, worker_id="g", lease_ttl_ms=600) as worker:
            task = await worker.claim_next()
            assert task is not None
            fault_server.kill()
            with trio.fail_after(3), task.lease_scope() as scope:
                await trio.sleep(10)
            assert scope.cancelled_caught
            assert task.lease_lost is not None and task.lease_lost.code == "lease_unrenewable"
            with pytest.raises(LeaseLostError):
                await task.complete()
            await fault_server.start()
