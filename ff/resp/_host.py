"""The nursery that hosts a client's background tasks (connection readers and writers).

`async with client` opens it in the caller's task: structured concurrency, the normal
way. A client used without `async with` (created synchronously, closed with
`await client.aclose()`) gets its nursery from a trio system task on first use. That is
the one use of `spawn_system_task` here, and it is deliberate: the pooled connections
must outlive whichever task happened to send the first command, a system task is
cancelled when the run's main task returns (so nothing outlives `trio.run`), and every
task in this nursery handles its own errors, so none can crash the run.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from types import TracebackType

import trio


class TaskHost:
    """Hands out the nursery, opening it in `async with` or in a system task."""

    def __init__(self) -> None:
        self._nursery: trio.Nursery | None = None
        self._manager: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._ready: trio.Event | None = None
        self._detached_scope: trio.CancelScope | None = None
        self._detached_done: trio.Event | None = None

    async def enter(self) -> None:
        """Open the nursery in the calling task (`Client.__aenter__`)."""
        if self._nursery is not None or self._ready is not None:
            raise RuntimeError("enter `async with client` before the client is first used")
        self._manager = manager = trio.open_nursery()
        self._nursery = await manager.__aenter__()

    async def exit(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Close the nursery opened by `enter` (its tasks must have been cancelled).

        The background tasks never raise, so an exception group holding only the body's
        own exception is unwrapped: `async with client` must not turn a plain
        `ResponseError` raised in the body into an ExceptionGroup.
        """
        manager, self._manager = self._manager, None
        assert manager is not None
        try:
            return await manager.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                return False
            raise

    async def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            if self._ready is None:
                self._ready = trio.Event()
                self._detached_done = trio.Event()
                trio.lowlevel.spawn_system_task(self._run_detached, name="ff.resp client tasks")
            await self._ready.wait()
        assert self._nursery is not None
        return self._nursery

    async def _run_detached(self) -> None:
        assert self._ready is not None and self._detached_done is not None
        try:
            with trio.CancelScope() as self._detached_scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    self._ready.set()
                    await trio.sleep_forever()
        finally:
            self._detached_done.set()

    async def aclose(self) -> None:
        """Stop the system-task nursery, if that is where the tasks run, and wait for it."""
        if self._detached_scope is not None and self._detached_done is not None:
            self._detached_scope.cancel()
            await self._detached_done.wait()
