"""Scanners against a real server: lease expiry and reclaim, timeouts, capability
routing, retention, concurrent server replicas and the boot checks."""

from __future__ import annotations

import pytest
import trio

from ff.config import ConfigError
from ff.core.errors import ContentionError, StateConflictError
from ff.core.keys import ExecKeys, WorkerKeys
from ff.core.partitions import PartitionConfig
from ff.core.policy import ExecutionPolicy, RoutingRequirements, StreamPolicy, TimeoutPolicy
from ff.script import execution as fns
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns
from ff.server import Server
from tests.engine.conftest import claim, core_field, engine_config, fence, submit

pytestmark = [pytest.mark.compat, pytest.mark.cluster]


async def test_unrenewed_lease_expires_and_another_worker_reclaims(server: Server) -> None:
    eid = await submit(server)
    first = await claim(server, "w1", ttl_ms=100)
    assert first is not None
    scanner = server.engine.scanner("lease_expiry")
    assert await scanner.run_once() == 0  # not due yet
    await trio.sleep(0.15)
    assert await scanner.run_once() == 1
    assert await core_field(server, eid, "ownership_state") == "lease_expired_reclaimable"
    second = await claim(server, "w2")
    assert second is not None
    assert (second.execution_id, second.attempt_type, second.attempt_index) == (eid, "reclaim", 1)
    assert int(second.lease_epoch) == int(first.lease_epoch) + 1
    with pytest.raises(ContentionError, match="stale_lease"):
        await fns.complete_execution(server.library, eid, **fence(first))
    await fns.complete_execution(server.library, eid, **fence(second))
    assert await server.get_execution_state(eid) == "completed"
    old_attempt = await server.client.execute("HGET", ExecKeys(eid).attempt(0), "attempt_state")
    assert old_attempt == b"interrupted_reclaimed"


async def test_a_holder_writing_after_expiry_marks_and_is_refused(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server, ttl_ms=50)
    await trio.sleep(0.08)
    with pytest.raises(StateConflictError, match="lease_expired"):
        await lease_fns.renew_lease(server.library, eid, attempt_index=0, lease_ttl_ms=1000,
                                    **fence(lease))
    assert await core_field(server, eid, "ownership_state") == "lease_expired_reclaimable"


async def test_revoke_then_reclaim(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    revoked = await server.revoke_lease(eid)
    assert (revoked.status, revoked.lease_id) == ("revoked", lease.lease_id)
    again = await server.revoke_lease(eid)
    assert (again.status, again.reason) == ("already_satisfied", "already_revoked")
    with pytest.raises(StateConflictError, match="lease_revoked"):
        await fns.complete_execution(server.library, eid, **fence(lease))
    reclaimed = await claim(server, "w2")
    assert reclaimed is not None and reclaimed.attempt_type == "reclaim"


async def test_reclaim_cap_fails_the_execution(server: Server) -> None:
    eid = await submit(server, policy=ExecutionPolicy(max_reclaim_count=1))
    await claim(server)
    await server.revoke_lease(eid)
    await claim(server, "w2")
    await server.revoke_lease(eid)
    with pytest.raises(StateConflictError, match="max_retries_exhausted"):
        await claim(server, "w3")
    assert await server.get_execution_state(eid) == "failed"
    assert await core_field(server, eid, "failure_reason") == "max_reclaims_exceeded"


async def test_explicit_reclaim_grant(server: Server) -> None:
    from ff.core.records import ReclaimGrantArgs, ReclaimGranted, ReclaimNotReclaimable

    eid = await submit(server)
    args = ReclaimGrantArgs(worker_id="w9", worker_instance_id="w9-i", lane_id="default",
                            grant_ttl_ms=5000)
    assert isinstance(await server.issue_reclaim_grant(eid, args), ReclaimNotReclaimable)
    await claim(server)
    await server.revoke_lease(eid)
    granted = await server.issue_reclaim_grant(eid, args)
    assert isinstance(granted, ReclaimGranted)
    assert granted.partition_key == eid[: eid.index("}") + 1]
    lease = await lease_fns.reclaim_execution(
        server.library, eid, worker_id="w9", worker_instance_id="w9-i",
        lease_id="00000000-0000-4000-8000-00000000000a", lease_ttl_ms=1000,
        attempt_id="00000000-0000-4000-8000-00000000000b")
    assert lease.attempt_type == "reclaim"


async def test_attempt_timeout_expires_the_execution(server: Server) -> None:
    eid = await submit(server, policy=ExecutionPolicy(
        timeout_policy=TimeoutPolicy(attempt_timeout_ms=50)))
    lease = await claim(server)
    scanner = server.engine.scanner("attempt_timeout")
    assert await scanner.run_once() == 0
    assert await server.get_execution_state(eid) == "active"
    await trio.sleep(0.08)
    await scanner.run_once()
    assert await server.get_execution_state(eid) == "expired"
    assert await core_field(server, eid, "failure_reason") == "attempt_timeout"
    with pytest.raises(ContentionError):
        await fns.complete_execution(server.library, eid, **fence(lease))


async def test_execution_deadline_expires_a_waiting_execution(server: Server) -> None:
    eid = await submit(server, policy=ExecutionPolicy(
        timeout_policy=TimeoutPolicy(execution_deadline_ms=50)))
    await trio.sleep(0.08)
    await server.engine.scanner("execution_deadline").run_once()
    assert await server.get_execution_state(eid) == "expired"
    assert await claim(server) is None


async def test_capability_mismatch_parks_and_unblock_brings_it_back(server: Server) -> None:
    needs_gpu = await submit(server, policy=ExecutionPolicy(
        routing_requirements=RoutingRequirements(required_capabilities=["gpu", "linux"])))
    plain = await submit(server)
    lease = await claim(server, "cpu-worker", caps=("linux",))
    assert lease is not None and lease.execution_id == plain
    assert await claim(server, "cpu-worker", caps=("linux",)) is None
    assert await core_field(server, needs_gpu, "eligibility_state") == "blocked_by_route"
    assert await server.get_execution_state(needs_gpu) == "waiting"
    unblock = server.engine.scanner("unblock")
    assert await unblock.run_once() == 0  # nobody alive can run it
    await scheduling_fns.register_worker(
        server.library, "default", "gpu-i", worker_id="gpu-worker", lanes_csv="default",
        caps_csv="gpu,linux", ttl_ms=10_000)
    assert await unblock.run_once() == 1
    assert await core_field(server, needs_gpu, "eligibility_state") == "eligible_now"
    gpu = await claim(server, "gpu-worker", caps=("gpu", "linux"))
    assert gpu is not None and gpu.execution_id == needs_gpu


async def test_dead_worker_caps_do_not_count(server: Server) -> None:
    eid = await submit(server, policy=ExecutionPolicy(
        routing_requirements=RoutingRequirements(required_capabilities=["gpu"])))
    assert await claim(server, caps=()) is None
    await scheduling_fns.register_worker(
        server.library, "default", "ghost", worker_id="g", lanes_csv="default",
        caps_csv="gpu", ttl_ms=30)
    await trio.sleep(0.06)
    assert await server.engine.scanner("unblock").run_once() == 0
    assert await core_field(server, eid, "eligibility_state") == "blocked_by_route"
    members = await server.client.execute("SMEMBERS", WorkerKeys("default").index)
    assert b"ghost" not in members


async def test_retention_trimmer_deletes_every_key(server_url: str) -> None:
    async with Server.running(engine_config(server_url, retention_default_ms=0)) as server:
        keep = await submit(server, policy=ExecutionPolicy(
            stream_policy=StreamPolicy(retention_ttl_ms=3_600_000)))
        eid = await submit(server, input_payload="p", tags={"a.b": "c"},
                           policy=ExecutionPolicy(max_replay_count=3))
        for _ in range(2):
            lease = await claim(server)
            if lease.execution_id == keep:
                await fns.complete_execution(server.library, keep, **fence(lease))
                continue
            await fns.complete_execution(server.library, eid, result=b"r", **fence(lease))
        await server.replay_execution(eid)
        lease = await claim(server)
        await fns.fail_execution(server.library, eid, **fence(lease))
        keys = [k async for k in server.client.scan_iter(match=f"*{eid}*")]
        assert len(keys) > 8
        await server.engine.scanner("retention_trimmer").run_once()
        assert [k async for k in server.client.scan_iter(match=f"*{eid}*")] == []
        leftovers = [k async for k in server.client.scan_iter()]
        assert not any(eid.encode() in k for k in leftovers)
        for key in leftovers:
            if key.startswith(b"ff:idx:"):
                kind = await server.client.execute("TYPE", key)
                if kind == b"zset":
                    assert await server.client.execute("ZSCORE", key, eid) is None
        assert await server.get_execution_state(keep) == "completed"


async def test_two_servers_scanning_at_once_do_not_double_act(server_url: str) -> None:
    config = engine_config(server_url)
    async with Server.running(config) as a, Server.running(config) as b:
        eids = [await submit(a) for _ in range(20)]
        leases = [await claim(a, "w", ttl_ms=50) for _ in eids]
        assert all(leases)
        await trio.sleep(0.08)
        async with trio.open_nursery() as nursery:
            for server in (a, b, a, b):
                nursery.start_soon(server.engine.scanner("lease_expiry").run_once)
        for eid in eids:
            history = await a.client.execute("XRANGE", ExecKeys(eid).lease_history, "-", "+")
            events = [dict(zip(f[::2], f[1::2], strict=True))[b"event"] for _, f in history]
            assert events.count(b"expired") == 1
        reclaimed = [await claim(b, "w2") for _ in eids]
        assert sorted(r.execution_id for r in reclaimed) == sorted(eids)
        assert await claim(a, "w3") is None


async def test_partition_mismatch_refuses_boot(server_url: str) -> None:
    async with Server.running(engine_config(server_url)):
        pass
    other = engine_config(server_url, partitions=PartitionConfig(8, 2, 2))
    with pytest.raises(ConfigError, match="partition_mismatch: num_flow_partitions"):
        async with Server.running(other):
            pass


async def test_external_valkey_requires_a_secret(server_url: str) -> None:
    with pytest.raises(ConfigError, match="FF_WAITPOINT_HMAC_SECRET"):
        async with Server.running(engine_config(server_url, waitpoint_hmac_secret=None)):
            pass


async def test_index_reconciler_repairs_a_missing_index_entry(server: Server) -> None:
    from ff import metrics
    from ff.core.keys import IndexKeys
    from ff.engine.scanners import INDEX_INCONSISTENCIES

    eid = await submit(server)
    reconciler = server.engine.scanner("index_reconciler")
    before = INDEX_INCONSISTENCIES.value(kind="eligible")
    assert await reconciler.run_once() == 1
    assert INDEX_INCONSISTENCIES.value(kind="eligible") == before
    partition = int(eid[4 : eid.index("}")])
    await server.client.execute("ZREM", IndexKeys(partition).lane("default", "eligible"), eid)
    assert await claim(server) is None  # stranded
    await reconciler.run_once()
    assert INDEX_INCONSISTENCIES.value(kind="eligible") == before + 1
    assert "ff_index_inconsistency_total" in metrics.render()
    repaired = await claim(server)
    assert repaired is not None and repaired.execution_id == eid


@pytest.mark.slow
async def test_index_reconciler_sees_no_drift_during_a_claim_storm(
    server: Server, caplog: pytest.LogCaptureFixture,
) -> None:
    """Claims move executions between indexes while the reconciler runs every 50 ms:
    checked atomically, none of them is drift."""
    from ff.engine.scanners import INDEX_INCONSISTENCIES
    from ff.script import execution as fns

    total = 2000
    for start in range(0, total, 200):
        async with trio.open_nursery() as nursery:
            for _ in range(start, start + 200):
                nursery.start_soon(submit, server)
    reconciler = server.engine.scanner("index_reconciler")
    kinds = ("eligible", "active", "terminal", "reclaimable", "missing_core")
    before = {kind: INDEX_INCONSISTENCIES.value(kind=kind) for kind in kinds}
    done = 0
    storm_over = trio.Event()

    async def worker(name: str) -> None:
        nonlocal done
        while (lease := await server.scheduler.claim_lease(
                lane_id="default", worker_id=name, worker_instance_id=f"{name}-i",
                lease_ttl_ms=30_000)) is not None:
            await fns.complete_execution(server.library, lease.execution_id,
                                         lease_id=lease.lease_id,
                                         lease_epoch=lease.lease_epoch,
                                         attempt_id=lease.attempt_id)
            done += 1

    async def reconcile_every_50ms() -> None:
        while not storm_over.is_set():
            await reconciler.run_once()
            await trio.sleep(0.05)

    with caplog.at_level("WARNING", logger="ff.engine"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reconcile_every_50ms)
            async with trio.open_nursery() as workers:
                for i in range(8):
                    workers.start_soon(worker, f"w{i}")
            storm_over.set()
    assert done == total
    assert reconciler.cycles >= 2
    assert [r for r in caplog.records if "index_reconciler" in r.getMessage()] == []
    assert {kind: INDEX_INCONSISTENCIES.value(kind=kind) for kind in kinds} == before
