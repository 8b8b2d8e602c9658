"""Replicas and failover, on a cluster of the test's own (3 primaries, 3 replicas), with
`replica_acks=1`. A function call returns once its primary's replica has it (the first
test: the guarantee itself, which fails without WAIT). A primary killed while executions
are created and run: its replica is promoted, the client follows the new slot map, and
every acknowledged execution completes, each run once (asynchronous replication would
rarely lose anything in so short a window, so this one shows the failover path, not the
guarantee)."""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest
import trio

from ff.core.keys import ExecKeys
from ff.core.partitions import PartitionConfig
from ff.core.records import CreateExecutionArgs
from ff.resp import Client
from ff.server import Server
from ff.transient import is_transient
from ff.worker import ClaimedTask
from tests.cluster.conftest import job_workers
from tests.conftest import LocalCluster
from tests.engine.conftest import engine_config, submit

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.faults]

EXECUTIONS = 400
BATCH = 20


async def replica_of(primary: int) -> int:
    async with Client.from_url(f"redis://127.0.0.1:{primary}") as node:
        info = (await node.execute("INFO", "replication")).decode()
    return int(info.split("slave0:")[1].split("port=")[1].split(",")[0])


async def test_a_call_returns_once_the_replica_has_it(
        own_cluster_with_replicas: LocalCluster) -> None:
    """A stopped replica holds the call back until it resumes; one that stays stopped
    past the timeout leaves the call unconfirmed, and the node is skipped for a while."""
    cluster = own_cluster_with_replicas
    config = engine_config(cluster.url + "?replica_acks=1&replica_ack_timeout_ms=1000")
    async with Server.running(config) as server:
        first = await submit(server)
        shortfalls = server.client.replication_shortfalls
        primary = await server.client.node_of(ExecKeys(first).core)
        replica = cluster.pid(await replica_of(int(primary.rpartition(":")[2])))

        async def resume_after(seconds: float) -> None:
            await trio.sleep(seconds)
            os.kill(replica, signal.SIGCONT)

        async def timed_submit() -> float:
            started = trio.current_time()
            await submit(server)  # same lane, same partition (lane_spread=1)
            return trio.current_time() - started

        async with trio.open_nursery() as nursery:  # resumed well within the timeout
            os.kill(replica, signal.SIGSTOP)
            nursery.start_soon(resume_after, 0.2)
            assert await timed_submit() >= 0.18
        assert server.client.replication_shortfalls == shortfalls
        async with trio.open_nursery() as nursery:  # stopped past it
            os.kill(replica, signal.SIGSTOP)
            nursery.start_soon(resume_after, 2.2)
            assert 0.95 <= await timed_submit() < 2.1
            assert server.client.replication_shortfalls == shortfalls + 1
            assert await timed_submit() < 0.5  # degraded: not waiting again


async def test_work_continues_after_a_primary_fails_over(
        own_cluster_with_replicas: LocalCluster) -> None:
    cluster = own_cluster_with_replicas
    url = cluster.url + "?replica_acks=1"
    config = engine_config(url, partitions=PartitionConfig(16, 2, 2), lane_spread=0,
                           scanners_enabled=True)
    runs: Counter[str] = Counter()
    acknowledged: list[str] = []
    killed = trio.Event()

    async def job(task: ClaimedTask, payload: object) -> None:
        runs[task.execution_id] += 1
        await trio.sleep(0.005)

    async def produce(server: Server) -> None:
        for first in range(0, EXECUTIONS, BATCH):
            batch = [CreateExecutionArgs(execution_kind="job", idempotency_key=f"k{i}")
                     for i in range(first, first + BATCH)]
            while True:  # the same keys again after a failure: a repeat meets its first copy
                try:
                    answers = await server.create_executions(batch)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    await trio.sleep(0.1)
                    continue
                if all(hasattr(a, "execution_id") for a in answers):
                    break
                assert all(is_transient(a) for a in answers if not hasattr(a, "execution_id"))
                await trio.sleep(0.1)
            acknowledged.extend(a.execution_id for a in answers)  # type: ignore[union-attr]
            await trio.sleep(0.05)

    async def fail_over(server: Server) -> None:
        while len(acknowledged) < EXECUTIONS // 4:
            await trio.sleep(0.01)
        address = await server.client.node_of(ExecKeys(acknowledged[-1]).core)
        await trio.to_thread.run_sync(cluster.kill, int(address.rpartition(":")[2]))
        killed.set()

    async def state_of(server: Server, eid: str) -> str | None:
        try:
            return await server.get_execution_state(eid)
        except Exception as exc:
            if not is_transient(exc):
                raise
            return None

    async with Server.running(config) as server:
        async with job_workers(url, job, max_concurrent=16, lease_ttl_ms=10_000):
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(produce, server)
                    nursery.start_soon(fail_over, server)
                pending = list(acknowledged)
                while pending:
                    pending = [eid for eid in pending
                               if await state_of(server, eid) != "completed"]
                    await trio.sleep(0.2)
        shortfalls = server.client.replication_shortfalls
    assert killed.is_set()
    assert len(set(acknowledged)) == EXECUTIONS
    assert set(runs) == set(acknowledged) and set(runs.values()) == {1}
    assert shortfalls >= 1  # the promoted primary has no replica: its calls go unconfirmed
