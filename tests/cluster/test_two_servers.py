"""Two `ff serve` processes on one cluster, one of them killed (SIGKILL): every server
scans every partition, so the survivor's scanners already cover the dead one's share.
A lease lost after the kill is reclaimed within the lease TTL plus one interval, and a
flow cancel the dead server left undone is finished from its durable backlog."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from ff.client import ApiClient
from ff.core.flow_records import AddExecutionToFlowArgs
from ff.core.partitions import PartitionConfig
from ff.core.records import CreateExecutionArgs
from ff.embedded import free_loopback_port
from ff.engine.flows import flow_keys_of
from ff.resp import Client
from ff.script import flow as flow_fns
from ff.script.library import FunctionLibrary
from ff.server import Server
from tests.api.test_serve import FF, serve_env, wait_healthy
from tests.conftest import LocalCluster
from tests.engine.conftest import claim, engine_config

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.faults]

LEASE_EXPIRY_INTERVAL_MS = 200
PARTITIONS = PartitionConfig(8)  # what serve_env gives the processes
MEMBERS = 200


@pytest.fixture
def cluster(test_cluster: LocalCluster) -> LocalCluster:
    test_cluster.flush()
    return test_cluster


class ServeProcess:
    """`ff serve` on the cluster, its log in a file (a pipe could fill and block it)."""

    def __init__(self, directory: Path, cluster: LocalCluster) -> None:
        directory.mkdir()
        port = free_loopback_port()
        self.url = f"http://127.0.0.1:{port}"
        env = serve_env(directory / "data", FF_LISTEN_ADDR=f"127.0.0.1:{port}",
                        FF_VALKEY_URL=cluster.url, FF_WAITPOINT_HMAC_SECRET="ab" * 16,
                        FF_LEASE_EXPIRY_INTERVAL_MS=str(LEASE_EXPIRY_INTERVAL_MS),
                        FF_CANCEL_FLOW_GRACE_MS="0", FF_CANCEL_RECONCILER_INTERVAL_S="1")
        self.log = directory / "serve.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([*FF, "serve"], env=env, stdout=subprocess.DEVNULL,
                                            stderr=log, cwd=directory)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, and a clean exit expected."""
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            while self.process.poll() is None:
                await trio.sleep(0.05)
        assert self.process.returncode == 0, self.log.read_text()[-2000:]


@asynccontextmanager
async def two_servers(tmp_path: Path, cluster: LocalCluster
                      ) -> AsyncIterator[tuple[ServeProcess, ServeProcess]]:
    doomed, survivor = ServeProcess(tmp_path / "a", cluster), ServeProcess(tmp_path / "b", cluster)
    try:
        for serve in (doomed, survivor):
            await wait_healthy(serve.url, serve.process)
        yield doomed, survivor
    finally:
        doomed.kill()
    await survivor.stop()


async def test_the_survivor_reclaims_a_lease_lost_after_the_other_died(
        tmp_path: Path, cluster: LocalCluster) -> None:
    config = engine_config(cluster.url, partitions=PARTITIONS, lane_spread=0)
    async with two_servers(tmp_path, cluster) as (doomed, survivor), \
            Server.running(config) as worker_side, ApiClient(doomed.url) as api:
        eid = (await api.create_execution(CreateExecutionArgs(execution_kind="job"))).execution_id
        lease = await claim(worker_side, ttl_ms=500)
        assert lease is not None and lease.execution_id == eid
        doomed.kill()
        with trio.fail_after(0.5 + LEASE_EXPIRY_INTERVAL_MS / 1000 + 1.0):
            while (again := await claim(worker_side, "w2")) is None:
                await trio.sleep(0.02)
        assert again.execution_id == eid and again.lease_epoch != lease.lease_epoch
        async with ApiClient(survivor.url) as api_b:
            assert (await api_b.get_execution(eid)).public_state == "active"


async def test_the_survivor_finishes_a_cancel_the_other_left_undone(
        tmp_path: Path, cluster: LocalCluster) -> None:
    """The backlog is recorded as the dead server's cancel_flow call records it (one
    atomic call), with nothing dispatched: as if it died right after that call."""
    async with two_servers(tmp_path, cluster) as (doomed, survivor), \
            Client.from_url(cluster.url) as client:
        async with ApiClient(doomed.url) as api:
            flow_id = (await api.create_flow()).Created.flow_id  # type: ignore[union-attr]
            ids = [(await api.add_execution_to_flow(flow_id, AddExecutionToFlowArgs(
                execution=CreateExecutionArgs(execution_kind=f"m{i}")))).execution_id
                for i in range(MEMBERS)]
        await flow_fns.cancel_flow(FunctionLibrary(client), flow_keys_of(flow_id, ids[0]),
                                   reason="two servers", policy="cancel_all", grace_ms=0)
        doomed.kill()
        async with ApiClient(survivor.url) as api:
            assert (await api.get_flow(flow_id)).counts == {"waiting": MEMBERS}
            with trio.fail_after(20):
                while (await api.get_flow(flow_id)).counts != {"cancelled": MEMBERS}:
                    await trio.sleep(0.2)
