"""The handler runtime against a real server: results, failures, retries, lease loss,
bounded concurrency, drain, and many executions over several workers."""

from __future__ import annotations

import collections

import pytest
import trio

from ff.core.keys import ExecKeys
from ff.core.policy import ExecutionPolicy, FixedBackoff, RetryPolicy
from ff.server import Server
from ff.worker import ClaimedTask, LeaseLostError, Worker
from tests.worker.conftest import (
    assert_each_ran_and_completed_once,
    core_field,
    make_worker,
    running,
    submit,
    wait_for_state,
)

pytestmark = pytest.mark.cluster

RETRY_TWICE = ExecutionPolicy(retry_policy=RetryPolicy(max_retries=2,
                                                       backoff=FixedBackoff(delay_ms=0)))


async def attempt_field(server: Server, eid: str, index: int, field: str) -> str:
    value = await server.client.execute("HGET", ExecKeys(eid).attempt(index), field)
    return value.decode() if value is not None else ""


async def test_results_by_return_type(server: Server, server_url: str) -> None:
    worker = make_worker(server_url)
    values = {"bytes": b"\x00\xff", "str": "h\u00e9", "json": {"a": [1, 2]}, "none": None}

    @worker.handler("ret")
    async def ret(task: ClaimedTask, payload: object) -> object:
        assert isinstance(payload, bytes)
        return values[payload.decode()]

    eids = {name: await submit(server, "ret", input_payload=name) for name in values}
    async with running(worker):
        for eid in eids.values():
            assert await wait_for_state(server, eid, "completed", "failed") == "completed"
    results = {name: await server.get_execution_result(eid) for name, eid in eids.items()}
    assert results == {"bytes": b"\x00\xff", "str": "h\u00e9".encode(),
                       "json": b'{"a":[1,2]}', "none": None}


async def test_json_payload_and_task_facts(server: Server, server_url: str) -> None:
    worker = make_worker(server_url, worker_id="facts")
    seen: list[tuple[object, ...]] = []

    @worker.handler("facts")
    async def facts(task: ClaimedTask, payload: object) -> None:
        seen.append((payload, task.kind, task.attempt_index, task.lane_id, task.tags,
                     task.attempt_type, int(task.lease_epoch) >= 1))

    eid = await submit(server, "facts", input_payload='{"n": 3}', payload_encoding="json",
                       tags={"app.k": "v"})
    async with running(worker):
        await wait_for_state(server, eid, "completed")
    assert seen == [({"n": 3}, "facts", 0, "default", {"app.k": "v"}, "initial", True)]


async def test_handler_exception_fails_the_attempt(server: Server, server_url: str) -> None:
    worker = make_worker(server_url)

    @worker.handler("boom")
    async def boom(task: ClaimedTask, payload: object) -> None:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError("outer") from exc

    eid = await submit(server, "boom")
    async with running(worker):
        assert await wait_for_state(server, eid, "failed", "completed") == "failed"
    assert await attempt_field(server, eid, 0, "failure_category") == "handler_error"
    assert await core_field(server, eid, "failure_reason") == "ValueError: outer: KeyError: 'inner'"


async def test_unknown_kind_and_bad_json_payload(server: Server, server_url: str) -> None:
    worker = make_worker(server_url)

    @worker.handler("json")
    async def never(task: ClaimedTask, payload: object) -> None:
        raise AssertionError("not reached")

    unknown = await submit(server, "nobody-handles-this")
    bad = await submit(server, "json", input_payload="{not json", payload_encoding="json")
    async with running(worker):
        await wait_for_state(server, unknown, "failed")
        await wait_for_state(server, bad, "failed")
    assert await attempt_field(server, unknown, 0, "failure_category") == "runtime_no_handler"
    assert "nobody-handles-this" in await core_field(server, unknown, "failure_reason")
    assert await attempt_field(server, bad, 0, "failure_category") == "extractor_payload_decode"


async def test_unencodable_result_fails_instead_of_hanging(server: Server,
                                                           server_url: str) -> None:
    worker = make_worker(server_url)

    @worker.handler("odd")
    async def odd(task: ClaimedTask, payload: object) -> object:
        return object()

    eid = await submit(server, "odd")
    async with running(worker):
        await wait_for_state(server, eid, "failed")
    assert "result rejected" in await core_field(server, eid, "failure_reason")


async def test_retry_then_success(server: Server, server_url: str) -> None:
    worker = make_worker(server_url)
    attempts: list[tuple[int, str]] = []

    @worker.handler("flaky")
    async def flaky(task: ClaimedTask, payload: object) -> str:
        attempts.append((task.attempt_index, task.attempt_type))
        if task.attempt_index == 0:
            raise RuntimeError("first try fails")
        return "second try"

    eid = await submit(server, "flaky", policy=RETRY_TWICE)
    async with running(worker):
        assert await wait_for_state(server, eid, "completed", "failed") == "completed"
    assert attempts == [(0, "initial"), (1, "retry")]
    assert await server.get_execution_result(eid) == b"second try"
    assert await core_field(server, eid, "total_attempt_count") == "2"
    assert await attempt_field(server, eid, 0, "failure_category") == "handler_error"


async def test_renewal_keeps_a_short_lease_alive(server: Server, server_url: str) -> None:
    """A handler running 4x the lease TTL keeps its lease while the expiry scanner runs."""
    worker = make_worker(server_url, lease_ttl_ms=300)

    @worker.handler("long")
    async def long(task: ClaimedTask, payload: object) -> str:
        await trio.sleep(1.2)
        return "ok"

    eid = await submit(server, "long")
    async with running(worker):
        await wait_for_state(server, eid, "active")
        scanner = server.engine.scanner("lease_expiry")
        while await server.get_execution_state(eid) == "active":
            await scanner.run_once()
            assert await core_field(server, eid, "ownership_state") in ("leased", "unowned")
            await trio.sleep(0.05)
    assert await server.get_execution_state(eid) == "completed"
    assert await core_field(server, eid, "total_attempt_count") == "1"


@pytest.mark.parametrize("swallow_cancel", [False, True])
async def test_lease_loss_cancels_the_handler(server: Server, server_url: str,
                                              swallow_cancel: bool) -> None:
    """Revoking the lease cancels the running handler and its value is never stored; the
    execution is then reclaimed (here by the same worker) as a new attempt."""
    worker = make_worker(server_url, lease_ttl_ms=600)
    started = trio.Event()
    events: list[str] = []
    first: list[ClaimedTask] = []

    @worker.handler("victim")
    async def victim(task: ClaimedTask, payload: object) -> str:
        if task.attempt_type == "reclaim":
            return "reclaimed"
        first.append(task)
        started.set()
        try:
            await trio.sleep(10)
        except trio.Cancelled:
            events.append("cancelled")
            if not swallow_cancel:
                raise
        return "must never be stored"

    eid = await submit(server, "victim")
    async with running(worker):
        with trio.fail_after(5):
            await started.wait()
        await server.revoke_lease(eid)
        with trio.fail_after(1):  # renewal runs every 200 ms
            while not events:
                await trio.sleep(0.01)
        await wait_for_state(server, eid, "completed")
    assert events == ["cancelled"]
    lost = first[0].lease_lost
    assert lost is not None
    assert lost.code in ("lease_revoked", "stale_lease", "execution_not_active")
    with pytest.raises(LeaseLostError):
        await first[0].complete(b"late")
    assert await server.get_execution_result(eid) == b"reclaimed"
    assert await core_field(server, eid, "total_attempt_count") == "2"


async def test_max_concurrent_is_never_exceeded(server: Server, server_url: str) -> None:
    worker = make_worker(server_url, max_concurrent=3)
    current = peak = 0

    @worker.handler("sleepy")
    async def sleepy(task: ClaimedTask, payload: object) -> None:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        assert worker.in_flight <= 3
        await trio.sleep(0.03)
        current -= 1

    eids = [await submit(server, "sleepy") for _ in range(20)]
    async with running(worker):
        for eid in eids:
            await wait_for_state(server, eid, "completed")
    assert peak == 3


async def test_drain_on_stop_finishes_in_flight_and_claims_nothing_new(
        server: Server, server_url: str) -> None:
    worker = make_worker(server_url)
    started = trio.Event()

    @worker.handler("work")
    async def work(task: ClaimedTask, payload: object) -> str:
        started.set()
        await trio.sleep(0.3)
        return "finished"

    first = await submit(server, "work")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: worker.run(handle_signals=False))
        with trio.fail_after(5):
            await started.wait()
        worker.stop()
        await trio.sleep(0.05)  # claim calls already in flight may still land (ms)
        later = await submit(server, "work")
    assert await server.get_execution_state(first) == "completed"
    assert await server.get_execution_state(later) == "waiting"
    assert await core_field(server, later, "total_attempt_count") == "0"


async def test_an_idle_worker_stops_promptly(server: Server, server_url: str) -> None:
    worker = make_worker(server_url)
    with trio.fail_after(2.5):
        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: worker.run(handle_signals=False,
                                                               task_status=task_status))
            await trio.sleep(1.6)  # idle backoff has grown to its 1 s cap
            stopped_at = trio.current_time()
            worker.stop()
    assert trio.current_time() - stopped_at < 0.2


async def test_drain_on_cancel_gives_in_flight_work_its_grace(server: Server,
                                                             server_url: str) -> None:
    worker = make_worker(server_url)
    started = trio.Event()

    @worker.handler("work")
    async def work(task: ClaimedTask, payload: object) -> str:
        started.set()
        await trio.sleep(0.3)
        return "finished"

    eid = await submit(server, "work")
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: worker.run(handle_signals=False))
            with trio.fail_after(5):
                await started.wait()
            scope.cancel()
    assert await server.get_execution_state(eid) == "completed"


async def test_grace_period_over_fails_as_retryable_worker_shutdown(
        server: Server, server_url: str) -> None:
    worker = make_worker(server_url, grace_period_s=0.2)
    started = trio.Event()

    @worker.handler("stuck")
    async def stuck(task: ClaimedTask, payload: object) -> None:
        started.set()
        await trio.sleep_forever()

    eid = await submit(server, "stuck", policy=RETRY_TWICE)
    async with running(worker):
        with trio.fail_after(5):
            await started.wait()
    assert await attempt_field(server, eid, 0, "failure_category") == "worker_shutdown"
    assert await server.get_execution_state(eid) == "waiting"  # retry scheduled, no delay
    assert await core_field(server, eid, "ownership_state") == "unowned"


async def test_thousand_executions_on_four_workers_complete_exactly_once(
        server: Server, server_url: str) -> None:
    total = 1000
    runs: collections.Counter[str] = collections.Counter()
    by_worker: collections.Counter[str] = collections.Counter()
    workers = [make_worker(server_url, worker_id=f"pool-{i}", max_concurrent=16)
               for i in range(4)]
    for worker in workers:
        @worker.handler("noop")
        async def noop(task: ClaimedTask, payload: object, _w: Worker = worker) -> None:
            runs[task.execution_id] += 1
            by_worker[_w.config.worker_id] += 1

    eids: list[str] = []

    async def submit_some(count: int) -> None:
        for _ in range(count):
            eids.append(await submit(server, "noop"))

    async with trio.open_nursery() as nursery:
        for worker in workers:
            await nursery.start(lambda task_status, w=worker: w.run(
                handle_signals=False, task_status=task_status))
        async with trio.open_nursery() as submitters:
            for _ in range(10):
                submitters.start_soon(submit_some, total // 10)
        with trio.fail_after(30):
            while len(runs) < total:
                await trio.sleep(0.05)
        for worker in workers:
            worker.stop()
    assert len(set(eids)) == total
    await assert_each_ran_and_completed_once(server, eids, runs)
    assert sum(by_worker.values()) == total
