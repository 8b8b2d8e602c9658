"""ff on a 3-primary cluster (`test_cluster`, started by tools/cluster.sh): redirects the
client follows by itself, the library on every primary, a slot range migrated under a
running workload, and a second server taking over the scanners of one that died."""

from __future__ import annotations

from collections import Counter

import pytest
import trio

from ff.core.keys import ExecKeys
from ff.core.partitions import PartitionConfig, flow_tag
from ff.resp import Client, ClusterClient
from ff.resp.slots import key_slot
from ff.server import Server
from ff.worker import ClaimedTask
from tests.conftest import LocalCluster
from tests.engine.conftest import claim, engine_config, submit
from tests.worker.conftest import make_worker, running

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster(test_cluster: LocalCluster) -> LocalCluster:
    test_cluster.flush()
    return test_cluster


async def test_commands_pipelines_and_scans_reach_every_primary(cluster: LocalCluster) -> None:
    async with Client.from_url(cluster.url) as client:
        assert isinstance(client, ClusterClient)
        keys = [f"k:{{t{i}}}" for i in range(60)]
        pipe = client.pipeline()
        for i, key in enumerate(keys):
            pipe.execute_command("SET", key, i)
        await pipe.run(raise_on_error=True)
        owners = {await client.node_of(k) for k in keys}
        assert len(owners) == 3
        pipe = client.pipeline()
        for key in reversed(keys):
            pipe.execute_command("GET", key)
        assert await pipe.run() == [str(i).encode() for i in reversed(range(60))]
        assert sorted([k.decode() async for k in client.scan_iter()]) == sorted(keys)
        assert await client.execute("DBSIZE") == 60


async def test_a_stale_slot_map_is_corrected_by_moved(cluster: LocalCluster) -> None:
    async with Client.from_url(cluster.url) as client:
        assert isinstance(client, ClusterClient)
        await client.execute("SET", "{a}x", "1")
        slot = key_slot("{a}x")
        owner = await client.node_of("{a}x")
        wrong = next(a for a in client.primaries if a != owner)
        assert client._map is not None
        client._map.owners[slot] = wrong
        assert await client.execute("GET", "{a}x") == b"1"
        assert await client.node_of("{a}x") == owner


async def test_the_library_is_reloaded_on_a_primary_that_lost_it(cluster: LocalCluster) -> None:
    async with Server.running(engine_config(cluster.url)) as server:
        eid = await submit(server)
        port = int((await server.client.node_of(ExecKeys(eid).core)).rpartition(":")[2])
        async with Client.from_url(f"redis://127.0.0.1:{port}") as node:
            await node.execute("FUNCTION", "FLUSH")
        lease = await claim(server)
        assert lease is not None and lease.execution_id == eid


async def _migrate_slot(slot: int, source: Client, target: Client, target_port: int) -> None:
    """Moves one slot's keys from `source` to `target` the way valkey-cli reshards."""
    source_id = (await source.execute("CLUSTER", "MYID")).decode()
    target_id = (await target.execute("CLUSTER", "MYID")).decode()
    await target.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    await source.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while keys := await source.execute("CLUSTER", "GETKEYSINSLOT", slot, 50):
        await source.execute("MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", *keys)
        await trio.sleep(0.01)  # let the workload interleave with the move
    for node in (target, source):
        await node.execute("CLUSTER", "SETSLOT", slot, "NODE", target_id)


@pytest.mark.slow
async def test_a_slot_migration_under_load_loses_nothing(cluster: LocalCluster) -> None:
    partitions = PartitionConfig(16, 2, 2)
    config = engine_config(cluster.url, partitions=partitions, lane_spread=0,
                           scanners_enabled=True)
    calls: Counter[str] = Counter()
    n = 2000
    async with Server.running(config) as server:
        assert isinstance(server.client, ClusterClient)
        owners = {p: await server.client.node_of(flow_tag(p)) for p in range(16)}
        source_address = owners[0]
        target_address = next(a for a in server.client.primaries if a != source_address)
        moving = sorted({key_slot(flow_tag(p)) for p, a in owners.items()
                         if a == source_address})
        worker = make_worker(cluster.url, max_concurrent=32)

        @worker.handler("job")
        async def job(task: ClaimedTask, payload: object) -> None:
            calls[task.execution_id] += 1

        eids: list[str] = []

        async def produce() -> None:
            for _ in range(n):
                eids.append(await submit(server))

        async with (
            Client.from_url(f"redis://{source_address}") as source,
            Client.from_url(f"redis://{target_address}") as target,
            running(worker),
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                await trio.sleep(0.2)
                for slot in moving:
                    await _migrate_slot(slot, source, target,
                                        int(target_address.rpartition(":")[2]))
            with trio.fail_after(60):
                while sum(calls.values()) < n:
                    await trio.sleep(0.05)
            await trio.sleep(0.5)
        states = Counter([await server.get_execution_state(e) for e in eids])
    assert states == {"completed": n}
    assert set(calls) == set(eids) and set(calls.values()) == {1}


async def test_a_second_server_reclaims_the_lease_of_a_dead_servers_share(
    server_url: str,
) -> None:
    """Every server scans every partition (actions are idempotent), so one dying leaves
    nothing unscanned: a lease lost after it died is reclaimed by the survivor within
    the lease TTL plus one interval."""
    config = engine_config(server_url, scanners_enabled=True)
    config = type(config)(**{**{f: getattr(config, f) for f in config.__struct_fields__},
                             "intervals": type(config.intervals)(lease_expiry=0.1)})
    async with Server.running(config) as survivor:
        async with Server.running(config) as doomed:
            eid = await submit(doomed)
        lease = await claim(survivor, ttl_ms=300)
        assert lease is not None and lease.execution_id == eid
        with trio.fail_after(0.3 + 0.1 + 1.0):
            while (again := await claim(survivor, worker="w2")) is None:
                await trio.sleep(0.02)
        assert again.execution_id == eid and again.lease_epoch != lease.lease_epoch

