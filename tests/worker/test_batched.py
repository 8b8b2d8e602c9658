"""Batched worker: one claim call per set of free slots (`ff_claim_batch`), one renewal
loop for every lease a worker holds."""

from __future__ import annotations

import collections

import pytest
import trio

from ff.core.errors import ValidationError
from ff.core.keys import ExecKeys, IndexKeys
from ff.core.records import CreateExecutionArgs
from ff.script import scheduling as scheduling_fns
from ff.script.library import text
from ff.server import Server
from ff.worker import ClaimedTask, Worker
from tests.worker.conftest import (
    assert_each_ran_and_completed_once,
    core_field,
    make_worker,
    running,
    submit,
    wait_for_state,
)

pytestmark = pytest.mark.compat


async def _submit_many(server: Server, kind: str, count: int) -> list[str]:
    eids: list[str] = []
    for start in range(0, count, 1000):
        results = await server.create_executions(
            [CreateExecutionArgs(execution_kind=kind) for _ in range(min(1000, count - start))])
        eids += [r.execution_id for r in results]  # type: ignore[union-attr]
    return eids


async def test_claim_batch_takes_in_order_and_refuses_bad_input(server: Server) -> None:
    eids = [await submit(server) for _ in range(5)]
    partition = server.config.partitions.lane_partition("default")

    async def batch(ids: list[tuple[str, str]]) -> list[str]:
        batch = await scheduling_fns.claim_batch(
            server.library, partition, lane_id="default", worker_id="w",
            worker_instance_id="w-i", worker_caps_csv="", lease_ttl_ms=30_000, ids=ids)
        return [lease.execution_id for lease in batch.leases]

    queue = [text(e) for e in await server.client.execute(
        "ZRANGE", IndexKeys(partition).lane("default", "eligible"), 0, -1)]
    assert sorted(queue) == sorted(eids)
    with pytest.raises(ValidationError):
        await batch([("", "a1")])  # a missing lease id refuses the whole call
    assert await batch([("l1", "a1"), ("l2", "a2")]) == queue[:2]
    assert await batch([(f"l{i}", f"a{i}") for i in range(3, 10)]) == queue[2:]
    assert await batch([("l9", "a9")]) == []
    assert {await core_field(server, e, "ownership_state") for e in eids} == {"leased"}


async def test_multi_claim_never_hands_one_execution_to_two_workers(
        server: Server, server_url: str) -> None:
    total = 1000
    runs: collections.Counter[str] = collections.Counter()
    workers = [make_worker(server_url, worker_id=f"pool-{i}", max_concurrent=32)
               for i in range(4)]
    for worker in workers:
        @worker.handler("noop")
        async def noop(task: ClaimedTask, payload: object) -> None:
            runs[task.execution_id] += 1
            await trio.sleep(0.001)

    eids = await _submit_many(server, "noop", total // 2)  # waiting before workers start
    async with trio.open_nursery() as nursery:
        for worker in workers:
            await nursery.start(lambda task_status, w=worker: w.run(
                handle_signals=False, task_status=task_status))
        eids += await _submit_many(server, "noop", total - len(eids))
        with trio.fail_after(30):
            while len(runs) < total:
                await trio.sleep(0.05)
        for worker in workers:
            worker.stop()
    assert len(set(eids)) == total
    await assert_each_ran_and_completed_once(server, eids, runs)


async def test_one_renewal_loop_keeps_500_leases_and_cancels_only_the_revoked(
        server: Server, server_url: str) -> None:
    count = 500
    worker: Worker = make_worker(server_url, lease_ttl_ms=600, max_concurrent=count)
    release = trio.Event()
    cancelled: list[str] = []

    @worker.handler("hold")
    async def hold(task: ClaimedTask, payload: object) -> str:
        try:
            await release.wait()
        except trio.Cancelled:
            cancelled.append(task.execution_id)
            raise
        return "ok"

    eids = await _submit_many(server, "hold", count)
    victim = eids[count // 2]
    async with running(worker):
        with trio.fail_after(10):
            while worker.in_flight < count:
                await trio.sleep(0.02)
        scanner = server.engine.scanner("lease_expiry")
        deadline = trio.current_time() + 2.0  # more than 3 TTLs
        revoked = False
        while trio.current_time() < deadline:
            await scanner.run_once()
            if not revoked and trio.current_time() > deadline - 1.2:
                await server.revoke_lease(victim)
                revoked = True
            await trio.sleep(0.05)
        with trio.fail_after(2):  # the next renewal tick (200 ms) finds the revoke
            while not cancelled:
                await trio.sleep(0.01)
        release.set()
        for eid in eids:
            if eid != victim:
                await wait_for_state(server, eid, "completed")
    assert cancelled == [victim]
    pipe = server.client.pipeline()
    for eid in eids:
        pipe.execute_command("HGET", ExecKeys(eid).core, "total_attempt_count")
    attempts = await pipe.run(raise_on_error=True)
    assert all(a == b"1" for eid, a in zip(eids, attempts, strict=True) if eid != victim)
