"""`ff.Client`: submit and follow executions straight through Valkey, without a server.

    async with ff.Client.connect("redis://127.0.0.1:6379") as client:
        created = await client.create_execution(ff.CreateExecutionArgs(execution_kind="email"))
        results = await client.create_executions([...])       # one round trip for many
        state = await client.get_execution_state(created.execution_id)

For an application that already talks to Valkey: no HTTP hop, no scanners, no boot. It is
the executions area of the Server API (`ff/api/executions.py`: create one or many, read
state, record and result, list, cancel, priority, replay) on a connection of its own. A
server must have booted the deployment once (partition counts, the function library);
like a worker, the producer loads the library only where none is present and refuses one
of another version.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ff.api.executions import ExecutionsApi
from ff.config import ServerConfig
from ff.core.keys import CONFIG_PARTITIONS
from ff.core.partitions import PartitionConfig
from ff.resp import Client as RespClient
from ff.script.library import text

log = logging.getLogger("ff.producer")


class Client(ExecutionsApi):
    """The executions API over a direct Valkey connection. Build it with `connect`."""

    @classmethod
    @asynccontextmanager
    async def connect(cls, valkey_url: str, *, pool_size: int = 4) -> AsyncIterator[Client]:
        """Connects, reads the deployment's partition counts and checks the library."""
        async with RespClient.from_url(valkey_url, pool_size=pool_size,
                                       client_name="ff-producer") as resp:
            raw = await resp.execute("HGETALL", CONFIG_PARTITIONS)
            stored = {text(k): int(v) for k, v in (raw or {}).items()}
            if not stored:
                log.warning("partition counts not found (no server booted yet?): using "
                            "the defaults", extra={"key": CONFIG_PARTITIONS})
            config = ServerConfig(valkey_url=valkey_url, partitions=PartitionConfig(**stored),
                                  scanners_enabled=False)
            producer = cls(config, resp)
            await producer.library.ensure_loaded(replace=False)
            yield producer

    @property
    def client(self) -> RespClient:
        """The RESP client underneath (for reads the API does not cover)."""
        return self._client
