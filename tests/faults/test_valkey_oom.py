"""Valkey out of memory (`maxmemory` small, `noeviction`): a create fails with a clear,
retryable error (HTTP 503), writes nothing, and creates work again once memory frees."""

from __future__ import annotations

import uuid

import pytest

from ff.client import ApiClient
from ff.core.records import CreateExecutionArgs
from ff.embedded import EmbeddedServer
from ff.server import Server
from ff.transient import is_transient
from tests.api.conftest import running_api

pytestmark = [pytest.mark.faults, pytest.mark.compat]

PAYLOAD = "x" * 200_000


async def keys_of(server: Server, eid: str) -> list[bytes]:
    bare = eid.split(":", 1)[1]
    return sorted(await server.client.execute("KEYS", f"*{bare}*"))


async def test_create_fails_cleanly_when_valkey_is_full(fault_server: EmbeddedServer) -> None:
    async with running_api(fault_server.url) as api:
        server = api.server
        await server.client.execute("CONFIG", "SET", "maxmemory-policy", "noeviction")
        await server.client.execute("CONFIG", "SET", "maxmemory", "4mb")
        error = None
        created = 0
        eid = ""
        for _ in range(200):
            eid = f"{{fp:0}}:{uuid.uuid4()}"
            try:
                await server.create_execution(CreateExecutionArgs(
                    execution_id=eid, partition_id=0, execution_kind="big",
                    input_payload=PAYLOAD))
                created += 1
            except Exception as exc:
                error = exc
                break
        assert error is not None, "maxmemory was never reached"
        assert created > 0
        assert is_transient(error), repr(error)
        assert "OOM" in str(error) or "memory" in str(error).lower(), str(error)
        assert await keys_of(server, eid) == []  # nothing half-written

        async with ApiClient(api.url) as client:
            response = await client.request("POST", "/v1/executions", json={
                "execution_kind": "big", "input_payload": PAYLOAD})
        assert response.status == 503, response.body
        assert b"retryable" in response.body

        await server.client.execute("CONFIG", "SET", "maxmemory", "0")
        await server.create_execution(CreateExecutionArgs(execution_kind="after"))
