"""Clusters of a test's own, for tests that change the topology (move slots, kill nodes),
a plain client on each primary to do it with, and workers to keep the work going."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import msgspec
import pytest

from ff.resp import Client
from ff.worker import ClaimedTask
from tests.conftest import LocalCluster
from tests.worker.conftest import make_worker, running


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """3 primaries; `own_cluster_with_replicas` adds one replica to each."""
    cluster = LocalCluster(tmp_path / "cluster")
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster_with_replicas(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path / "cluster", replicas=True)
    cluster.start()
    yield cluster
    cluster.stop()


class Node(msgspec.Struct):
    port: int
    node_id: str
    client: Client


@pytest.fixture
async def nodes(own_cluster: LocalCluster) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        found = []
        for port in own_cluster.primary_ports():
            client = await stack.enter_async_context(Client.from_url(f"redis://127.0.0.1:{port}"))
            found.append(Node(port, (await client.execute("CLUSTER", "MYID")).decode(), client))
        yield found


@asynccontextmanager
async def job_workers(url: str, job: Callable[[ClaimedTask, object], Awaitable[None]],
                      count: int = 3, **settings: object) -> AsyncIterator[None]:
    """`count` workers running `job` for executions of kind "job", drained on exit."""
    async with AsyncExitStack() as stack:
        for i in range(count):
            worker = make_worker(url, worker_id=f"w{i}", **settings)
            worker.handler("job")(job)
            await stack.enter_async_context(running(worker))
        yield
