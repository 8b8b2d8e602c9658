"""`Client`: the public entry point for one Valkey/Redis server.

Shared traffic goes through the auto-pipelining pool; blocking commands and pub/sub get
connections of their own so they never stall it. Use it as `async with client:` (its
background tasks then live in a nursery in your task) or call `await client.aclose()`
when done (see `_host` for where the tasks live then). A client belongs to the trio
run that first uses it.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import trio

from ff.resp import errors
from ff.resp._commands import encode_shared
from ff.resp._connection import Connection
from ff.resp._helpers import CommandHelpers
from ff.resp._host import TaskHost
from ff.resp._pipeline import Pipeline
from ff.resp._pool import Pool, PoolStats
from ff.resp._pubsub import Subscription
from ff.resp._transport import open_transport
from ff.resp._url import ConnectionParams, parse_url


class Client(CommandHelpers):
    """A pooled, pipelined RESP3 client. Construction is cheap and never connects."""

    def __init__(
        self, params: ConnectionParams, *, pool_size: int = 4, command_timeout: float = 10.0
    ) -> None:
        if not command_timeout > 0:
            raise ValueError("command_timeout must be positive")
        self.params = params
        self._command_timeout = command_timeout
        self._host = TaskHost()
        self._pool = Pool(params, size=pool_size, command_timeout=command_timeout, host=self._host)
        self._closed = False

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        pool_size: int = 4,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        client_name: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        cluster: bool = False,
    ) -> Client:
        """A client for `redis://[user:pass@]host:port/db`, `rediss://...` or `unix:///path`.

        `ssl_context` (rediss only) replaces the default context that trusts the
        system's CAs, e.g. to trust a private CA or present a client certificate.
        A `redis+cluster://` URL, or `cluster=True`, gives a `ClusterClient` seeded with
        that node.
        """
        params = parse_url(
            url, client_name=client_name, connect_timeout=connect_timeout, ssl_context=ssl_context
        )
        if params.cluster or cluster:
            from ff.resp._cluster import ClusterClient

            return ClusterClient(params, pool_size=pool_size, command_timeout=command_timeout)
        if params.replica_acks:
            raise ValueError("replica_acks applies to a cluster URL (redis+cluster://)")
        return cls(params, pool_size=pool_size, command_timeout=command_timeout)

    async def __aenter__(self) -> Client:
        await self._host.enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._close()
        return await self._host.exit(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the pooled connections; pending and later commands fail.

        Dedicated connections and subscriptions already open are closed by their own
        `async with` blocks; new ones are refused.
        """
        self._close()
        await self._host.aclose()

    def _close(self) -> None:
        self._closed = True
        self._pool.close()

    def stats(self) -> PoolStats:
        """The shared pool's live connections, waiters, reconnects and last error
        (dedicated connections and subscriptions are not in it)."""
        return self._pool.stats()

    def _check_open(self) -> None:
        if self._closed:
            raise errors.ClientClosedError("the client is closed")

    async def execute(self, *args: str | bytes | int | float, timeout: float | None = None) -> Any:
        """Run one command on the shared pool and return its decoded reply.

        An error reply raises `errors.ResponseError`. `timeout` overrides the client's
        command timeout; when it expires the connection is replaced.
        """
        reply = await self._pool.request(encode_shared(args), 1, timeout)
        if isinstance(reply, errors.ResponseError):
            raise reply
        return reply

    async def on_every_primary(self, *args: str | bytes | int | float) -> dict[str, Any]:
        """Run one keyless command on every primary (here: the one server): replies by
        address, an error reply as a value."""
        return {self.params.address: (await self.pipeline().execute_command(*args).run())[0]}

    def pipeline(self, transaction: bool = False) -> Pipeline:
        """Commands sent together in one round trip; `transaction` wraps them in MULTI/EXEC."""
        return Pipeline(self._pool, transaction=transaction)

    async def _params_for(self, key: str | bytes | None) -> ConnectionParams:
        """Where a private connection for `key` goes (a cluster client picks the primary
        that owns it; one server has every key)."""
        return self.params

    @asynccontextmanager
    async def dedicated(self, key: str | bytes | None = None) -> AsyncIterator[Connection]:
        """A private connection for blocking commands (BLPOP, BLMPOP, XREAD BLOCK, ...).

        `key` names the key the blocking command waits on (a cluster client connects to
        its primary; one server has them all).

        Give each blocking call a `timeout` longer than its blocking time (`math.inf`
        for none). The connection is not reconnected: after an error, open another.
        """
        self._check_open()
        params = await self._params_for(key)
        connection = await Connection.connect(params, command_timeout=self._command_timeout)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.run)
            try:
                yield connection
            finally:
                connection.close()

    @asynccontextmanager
    async def subscribe(self, *channels: str | bytes) -> AsyncIterator[Subscription]:
        """Subscribe on a private connection; messages sent after entry are all received."""
        if not channels:
            raise ValueError("subscribe needs at least one channel")
        self._check_open()
        params = await self._params_for(None)
        stream, reader = await open_transport(params)
        try:
            subscription = Subscription(stream, reader, params.address)
            await subscription.subscribe(channels, timeout=self._command_timeout)
            yield subscription
        finally:
            await trio.aclose_forcefully(stream)


