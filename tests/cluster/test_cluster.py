"""ff on a 3-primary cluster (`test_cluster`, started by tools/cluster.sh): redirects the
client follows by itself, the library on every primary, and a second server taking over
the scanners of one that died."""

from __future__ import annotations

import pytest
import trio

from ff.core.keys import ExecKeys
from ff.resp import Client, ClusterClient
from ff.resp.slots import key_slot
from ff.script import lease as lease_fns
from ff.server import Server
from tests.conftest import LocalCluster
from tests.engine.conftest import claim, engine_config, submit

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


async def test_a_slot_without_a_primary_is_waited_for(cluster: LocalCluster) -> None:
    """During a failover the map has no primary for the dead one's slots until its replica
    is promoted: commands for them wait (retried like CLUSTERDOWN), in a pipeline too."""
    async with Client.from_url(cluster.url) as client:
        assert isinstance(client, ClusterClient)
        await client.execute("SET", "{a}x", "1")
        slot = key_slot("{a}x")
        real_refresh = client.refresh
        refreshes = 0

        async def refresh_with_the_slot_unserved() -> None:
            nonlocal refreshes
            refreshes += 1
            await real_refresh()
            if refreshes < 3:
                assert client._map is not None
                client._map.owners[slot] = None

        client.refresh = refresh_with_the_slot_unserved  # type: ignore[method-assign]
        await client.refresh()
        assert await client.execute("GET", "{a}x") == b"1"
        assert refreshes >= 3
        refreshes = 0
        await client.refresh()
        pipe = client.pipeline()
        pipe.execute_command("GET", "{a}x")
        pipe.execute_command("GET", "{b}y")
        assert await pipe.run() == [b"1", None]
        assert refreshes >= 3


async def test_the_library_is_reloaded_on_a_primary_that_lost_it(cluster: LocalCluster) -> None:
    async with Server.running(engine_config(cluster.url)) as server:
        eid = await submit(server)
        port = int((await server.client.node_of(ExecKeys(eid).core)).rpartition(":")[2])
        async with Client.from_url(f"redis://127.0.0.1:{port}") as node:
            await node.execute("FUNCTION", "FLUSH")
        lease = await claim(server)
        assert lease is not None and lease.execution_id == eid


async def test_a_call_waits_while_its_slot_is_migrating(cluster: LocalCluster) -> None:
    """The migration fence: while the slot is open (MIGRATING / IMPORTING), a function
    call on it is answered TRYAGAIN and retried, and runs once the slot is stable again,
    even a call whose own keys all exist on the source (a renewal declares only the core)."""
    async with Server.running(engine_config(cluster.url)) as server:
        eid = await submit(server)
        lease = await claim(server)
        assert lease is not None and lease.execution_id == eid
        core = ExecKeys(eid).core
        slot = key_slot(core)
        source = int((await server.client.node_of(core)).rpartition(":")[2])
        target = next(p for p in cluster.primary_ports() if p != source)
        async with Client.from_url(f"redis://127.0.0.1:{source}") as src, \
                Client.from_url(f"redis://127.0.0.1:{target}") as dst:
            src_id = (await src.execute("CLUSTER", "MYID")).decode()
            dst_id = (await dst.execute("CLUSTER", "MYID")).decode()

            async def stable_after(seconds: float) -> None:
                await trio.sleep(seconds)
                for node in (src, dst):
                    await node.execute("CLUSTER", "SETSLOT", slot, "STABLE")

            await dst.execute("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            await src.execute("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(stable_after, 0.3)
                    started = trio.current_time()
                    expires = await lease_fns.renew_lease(
                        server.library, eid, attempt_index=lease.attempt_index,
                        attempt_id=lease.attempt_id, lease_id=lease.lease_id,
                        lease_epoch=lease.lease_epoch, lease_ttl_ms=30_000)
                    waited = trio.current_time() - started
            finally:
                with trio.CancelScope(shield=True):
                    await stable_after(0)
        assert expires > lease.expires_at - 30_000
        assert waited >= 0.25


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

