"""`Server`: the public API of ff, usable in-process from trio.

    async with Server.running(config) as server:
        created = await server.create_execution(CreateExecutionArgs(execution_kind="email"))

`running` connects (starting an embedded valkey-server through `ff.embedded` when no
address is configured), boots the deployment (`ff.boot`), and runs the engine scanners in
its nursery until the block exits. The methods live in one module per area under
`ff/api/`; this class only assembles them and owns the lifecycle. The HTTP front end is a
thin layer over these methods; nothing here knows about HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from ff import boot
from ff.api.budgets import BudgetsApi
from ff.api.executions import ExecutionsApi
from ff.api.flows import FlowsApi
from ff.api.lanes import LanesApi
from ff.api.scheduling import SchedulingApi
from ff.api.streams import StreamsApi
from ff.api.waitpoints import WaitpointsApi
from ff.config import ConfigError, ServerConfig
from ff.core.keys import LANES
from ff.core.partitions import PartitionConfig
from ff.embedded import EmbeddedServer, embedded_deployment
from ff.engine import Engine
from ff.resp import Client

log = logging.getLogger("ff.server")

STREAM_OPS_DRAIN_S = 15.0


class Server(FlowsApi, ExecutionsApi, LanesApi, SchedulingApi, WaitpointsApi, BudgetsApi,
             StreamsApi):
    """The engine's public API. Build it with `Server.running(config)`."""

    def __init__(self, config: ServerConfig, client: Client) -> None:
        super().__init__(config, client)
        self.engine = Engine(client, self.library, config)
        self.embedded: EmbeddedServer | None = None
        self._engine_scope: trio.CancelScope | None = None
        self.shutting_down = False

    @classmethod
    @asynccontextmanager
    async def running(cls, config: ServerConfig | None = None) -> AsyncIterator[Server]:
        """Boot a server, run its scanners, and shut it down when the block exits."""
        settings = ServerConfig.from_env() if config is None else config
        async with AsyncExitStack() as stack:
            embedded = None
            if settings.valkey_url is None:
                settings, embedded = await stack.enter_async_context(
                    embedded_deployment(settings))
            elif not settings.waitpoint_hmac_secret:
                raise ConfigError("FF_WAITPOINT_HMAC_SECRET is required with an external Valkey")
            client = await stack.enter_async_context(
                Client.from_url(settings.valkey_url or "", pool_size=settings.pool_size,
                                client_name="ff-server", cluster=settings.valkey_cluster)
            )
            server = cls(settings, client)
            server.embedded = embedded
            await server.start()
            async with trio.open_nursery() as nursery:
                server._engine_scope = nursery.cancel_scope
                if settings.scanners_enabled:
                    await nursery.start(server.engine.run)
                if settings.completion_listener:
                    await nursery.start(server.engine.completions.run)
                async with trio.open_nursery() as dispatch:
                    server.dispatch_nursery = dispatch
                    try:
                        yield server
                    finally:
                        await server.drain_dispatch()
                        await server.shutdown()

    async def start(self) -> None:
        """The boot sequence; order matters (the version gate before any write)."""
        await boot.check_server_version(self._client)
        await boot.lock_partition_config(self._client, self._config)
        await self.library.ensure_loaded(force=self._config.force_lua_reload)
        await boot.install_hmac_secret(self.library, self._config)
        await boot.upgrade_stored_data(self._client, self.library, self._config)
        await self._client.execute("SADD", LANES, *self._config.lanes)
        self._lanes_registered_at.update(dict.fromkeys(self._config.lanes, trio.current_time()))
        log.info("server started", extra={"scanners": len(self.engine.scanners)})

    async def shutdown(self) -> None:
        """Refuse new stream reads and tails (503) and let running ones end (up to 15 s),
        then stop the scanners. Idempotent; other in-flight API calls are not interrupted."""
        self.shutting_down = True
        if not await self.stream_ops.close(STREAM_OPS_DRAIN_S):
            log.warning("stream reads still running after %.0f s", STREAM_OPS_DRAIN_S)
        if self._engine_scope is not None:
            self._engine_scope.cancel()

    @property
    def client(self) -> Client:
        return self._client

    @property
    def config(self) -> ServerConfig:
        return self._config

    @property
    def partition_config(self) -> PartitionConfig:
        return self._config.partitions
