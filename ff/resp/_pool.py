"""The single-node pool: a few multiplexed connections, connected and repaired in the background.

Each of the `size` slots is a task that connects, runs its connection until it breaks,
and reconnects with capped exponential backoff (50 ms doubling to 2 s). Callers never
connect. They join the batch of the connection used last while that batch is still
waiting for its write (so one scheduler tick's commands share one syscall), and
otherwise move on to the next live connection round-robin. When none is live they
either wait for the first connection attempt or, if the last attempt failed or the last
connection broke, fail at once with that error: a dead server costs callers nothing,
and the slots bring the pool back by themselves.

`request(frames, count, timeout)` is the narrow interface the client, pipelines and a
future cluster router (one pool per node, chosen by hash slot) are built on. `stats()`
says what the pool is doing (live connections, callers waiting, reconnects, the last
error) without touching it; `/metrics` publishes it.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import msgspec
import trio

from ff.resp import errors
from ff.resp._connection import Connection
from ff.resp._host import TaskHost
from ff.resp._transport import describe
from ff.resp._url import ConnectionParams

BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
STABLE_AFTER = 1.0  # a connection that lived this long resets the backoff


class PoolStats(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one pool. Counters (`reconnects`, `errors`) only grow."""

    address: str
    size: int  # connection slots
    connections: int  # live connections now
    waiters: int  # callers waiting for a first live connection
    pending_replies: int  # replies awaited on the live connections
    reconnects: int  # connections opened after a slot's first attempt
    errors: int  # failed connects and lost connections
    last_error: str | None = None  # the latest of those, kept after the pool recovers
    last_error_at: float | None = None  # its wall-clock time, Unix seconds


class Requester(Protocol):
    """What pipelines and clients need from whatever carries their frames."""

    async def request(self, frames: bytes, count: int, timeout: float | None) -> Any: ...


class Pool:
    """`size` shared connections to one server."""

    def __init__(
        self, params: ConnectionParams, *, size: int, command_timeout: float, host: TaskHost
    ) -> None:
        if size < 1:
            raise ValueError("pool_size must be at least 1")
        self._params = params
        self._size = size
        self._command_timeout = command_timeout
        self._host = host
        self._live: list[Connection] = []
        self._next = 0
        self._current: Connection | None = None  # takes commands while its batch is open
        self._error: errors.RespError | None = None  # latest failure; used while none is live
        self._waiters = 0
        self._reconnects = 0
        self._errors = 0
        self._last_error: tuple[str, float] | None = None  # (message, Unix time), for stats
        self._changed = trio.Event()
        self._starting = False
        self._closed = False
        self._scope: trio.CancelScope | None = None

    async def request(self, frames: bytes, count: int, timeout: float | None) -> Any:
        """Send `frames` on a live connection; one reply (count == 1) or a list."""
        live = self._live
        if live:
            connection = self._current
            if connection is None or not connection.batch_open:
                self._next = index = (self._next + 1) % len(live)
                connection = self._current = live[index]
        else:
            connection = await self._wait_for_connection()
        return await connection.request(frames, count, timeout)

    async def _wait_for_connection(self) -> Connection:
        self._waiters += 1
        try:
            while not self._live:
                if self._closed:
                    raise errors.ClientClosedError("the client is closed")
                if self._error is not None:
                    raise _fresh(self._error)
                if self._scope is None and not self._starting:
                    await self._start()
                else:
                    await self._changed.wait()
            return self._live[0]
        finally:
            self._waiters -= 1

    async def _start(self) -> None:
        """Start the slot tasks (first use). If the starting caller is cancelled, the next
        waiter, woken by the notification, takes over."""
        self._starting = True
        try:
            nursery = await self._host.nursery()
            await nursery.start(self._run)
        finally:
            self._starting = False
            self._notify()

    async def _run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._scope = nursery.cancel_scope
            if self._closed:
                nursery.cancel_scope.cancel()
            for _ in range(self._size):
                nursery.start_soon(self._keep_connected)
            task_status.started()

    async def _keep_connected(self) -> None:
        delay = BACKOFF_MIN
        first_attempt = True
        while True:
            try:
                connection = await Connection.connect(
                    self._params, command_timeout=self._command_timeout, on_broken=self._lost
                )
            except errors.RespError as exc:
                first_attempt = False
                self._set_error(exc)
                await trio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            if not first_attempt:
                self._reconnects += 1
            first_attempt = False
            self._live.append(connection)
            self._error = None
            self._notify()
            started = trio.current_time()
            await connection.run()
            if trio.current_time() - started >= STABLE_AFTER:
                delay = BACKOFF_MIN
            else:  # connections that die young (flapping server, maxclients): back off
                await trio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def _lost(self, connection: Connection) -> None:
        if connection in self._live:
            self._live.remove(connection)
        if self._closed:  # closing the pool broke it: not a failure
            return
        self._set_error(
            errors.ConnectionError(
                f"connection to {self._params.address} lost: {describe(connection.error)}"
            )
        )

    def _set_error(self, error: errors.RespError) -> None:
        """The one place a failed connect or a lost connection is recorded."""
        self._error = error
        self._errors += 1
        self._last_error = (f"{type(error).__name__}: {error}", time.time())
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def stats(self) -> PoolStats:
        """What the pool holds and has been through; cheap enough for every scrape."""
        message, at = self._last_error or (None, None)
        return PoolStats(
            address=self._params.address, size=self._size, connections=len(self._live),
            waiters=self._waiters, pending_replies=sum(c.pending for c in self._live),
            reconnects=self._reconnects, errors=self._errors, last_error=message,
            last_error_at=at,
        )

    def close(self) -> None:
        """Close every connection and stop reconnecting; later requests fail."""
        self._closed = True
        for connection in list(self._live):
            connection.close(errors.ClientClosedError("the client is closed"))
        if self._scope is not None:
            self._scope.cancel()
        self._notify()


def _fresh(error: errors.RespError) -> errors.RespError:
    """A new exception like `error`, so concurrent callers never share one instance."""
    copy = type(error)(*error.args)
    copy.__cause__ = error
    return copy
