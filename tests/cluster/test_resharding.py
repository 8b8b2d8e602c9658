"""Work under a changing cluster, each test on a cluster of its own: a slot range
migrated (`CLUSTER SETSLOT` / `MIGRATE`, as `valkey-cli --cluster reshard` does) while
2,000 executions are created and run loses nothing and runs each once."""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from ff.core.partitions import PartitionConfig, flow_tag
from ff.core.records import CreateExecutionArgs
from ff.resp.slots import key_slot
from ff.server import Server
from ff.worker import ClaimedTask
from tests.cluster.conftest import Node, job_workers
from tests.conftest import LocalCluster
from tests.engine.conftest import engine_config

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.faults]

EXECUTIONS = 2_000
PARTITIONS = PartitionConfig(32, 2, 2)
MIGRATE_BATCH = 4  # keys per MIGRATE, with a pause between: a slot stays split for a while


async def owned_slots(node: Node) -> list[int]:
    slots: list[int] = []
    for start, end, primary, *_replicas in await node.client.execute("CLUSTER", "SLOTS"):
        if int(primary[1]) == node.port:
            slots.extend(range(start, end + 1))
    return sorted(slots)


async def migrate_slot(slot: int, source: Node, target: Node, others: list[Node]) -> int:
    """Move one slot the way a resharding tool does; MIGRATE without REPLACE, so a key
    written on the target while the source still had it fails the move (BUSYKEY)."""
    await target.client.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", source.node_id)
    await source.client.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", target.node_id)
    moved = 0
    while keys := await source.client.execute("CLUSTER", "GETKEYSINSLOT", slot, MIGRATE_BATCH):
        await source.client.execute("MIGRATE", "127.0.0.1", target.port, "", 0, 10_000,
                                    "KEYS", *keys)
        moved += len(keys)
        await trio.sleep(0.02)
    for node in (target, source, *others):
        await node.client.execute("CLUSTER", "SETSLOT", slot, "NODE", target.node_id)
    return moved


async def test_a_slot_range_migrated_under_load_loses_nothing(
        own_cluster: LocalCluster, nodes: list[Node]) -> None:
    partition_slots = {key_slot(flow_tag(p)) for p in range(PARTITIONS.num_flow_partitions)}
    source, target, other = nodes
    slots = await owned_slots(source)
    moving = slots[: len(slots) // 2]  # a contiguous range: half of what the source owns
    busy = partition_slots & set(moving)
    assert len(busy) >= 3  # the range holds partitions that the run keeps busy
    config = engine_config(own_cluster.url, partitions=PARTITIONS, lane_spread=0,
                           scanners_enabled=True)
    runs: Counter[str] = Counter()
    all_done = trio.Event()

    async def job(task: ClaimedTask, payload: object) -> None:
        runs[task.execution_id] += 1
        await trio.sleep(0.005)
        if len(runs) == EXECUTIONS:
            all_done.set()

    created: list[str] = []
    moved_keys = 0

    async def produce() -> None:
        for _ in range(EXECUTIONS // 50):
            answers = await server.create_executions(
                [CreateExecutionArgs(execution_kind="job") for _ in range(50)])
            created.extend(a.execution_id for a in answers)  # type: ignore[union-attr]
            await trio.sleep(0.1)

    async def reshard() -> None:
        nonlocal moved_keys
        while len(created) < 300:
            await trio.sleep(0.02)
        busy_first = sorted(moving, key=lambda slot: slot not in busy)
        for slot in busy_first:
            moved_keys += await migrate_slot(slot, source, target, [other])

    async with Server.running(config) as server:
        async with job_workers(own_cluster.url, job, max_concurrent=32, lease_ttl_ms=30_000):
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(produce)
                    nursery.start_soon(reshard)
                await all_done.wait()
        states = Counter([await server.get_execution_state(eid) for eid in created])
        attempts = Counter([(await server.get_execution(eid)).current_attempt_index
                            for eid in created])
    assert moved_keys > 0
    assert len(created) == EXECUTIONS
    assert states == {"completed": EXECUTIONS}
    assert set(runs) == set(created) and set(runs.values()) == {1}
    assert attempts == {0: EXECUTIONS}
    for node in nodes:
        assert [k async for k in node.client.scan_iter(match="ff:fence:*")] == []
    assert {slot for slot in moving if slot in await owned_slots(target)} == set(moving)
