"""Fixtures for engine tests: a booted Server (scanners off: tests drive them) and a
small lease-holder helper built on the same scheduler code the worker SDK uses."""

from __future__ import annotations

import msgspec
import pytest

from ff.config import ServerConfig
from ff.core.partitions import PartitionConfig
from ff.core.records import CreateExecutionArgs, LeaseHandle
from ff.scheduler import lease_from_grant
from ff.server import Server

SECRET = "ab" * 32
TEST_PARTITIONS = PartitionConfig(4, 2, 2)


def engine_config(server_url: str, **overrides: object) -> ServerConfig:
    """Solo executions stay on the lane's home partition (`lane_spread=1`) so tests can
    check FIFO-within-priority; tests of spreading override it."""
    config = ServerConfig(
        valkey_url=server_url, waitpoint_hmac_secret=SECRET, partitions=TEST_PARTITIONS,
        scanners_enabled=False, lane_spread=1,
    )
    return msgspec.structs.replace(config, **overrides)


@pytest.fixture
async def server(server_url: str):
    async with Server.running(engine_config(server_url)) as server:
        yield server


async def submit(server: Server, kind: str = "job", **fields: object) -> str:
    created = await server.create_execution(CreateExecutionArgs(execution_kind=kind, **fields))
    return created.execution_id


async def claim(
    server: Server, worker: str = "w1", *, lane: str = "default", caps: tuple[str, ...] = (),
    ttl_ms: int = 30_000,
) -> LeaseHandle | None:
    grant = await server.claim_for_worker(
        lane_id=lane, worker_id=worker, worker_instance_id=f"{worker}-i", capabilities=caps,
    )
    if grant is None:
        return None
    return await lease_from_grant(
        server.library, grant, worker_id=worker, worker_instance_id=f"{worker}-i",
        lease_ttl_ms=ttl_ms,
    )


def fence(lease: LeaseHandle) -> dict[str, str]:
    return {"lease_id": lease.lease_id, "lease_epoch": lease.lease_epoch,
            "attempt_id": lease.attempt_id}


async def core_field(server: Server, eid: str, field: str) -> str:
    from ff.core.keys import ExecKeys

    value = await server.client.execute("HGET", ExecKeys(eid).core, field)
    return value.decode() if value is not None else ""
