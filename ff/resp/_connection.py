"""One multiplexed, auto-pipelined connection: many tasks, one socket, replies in FIFO.

A caller appends its encoded frame to `_outbuf` and a `_Waiter` to `_waiters`, in one
synchronous step, then sleeps. The writer task sends everything queued with one
`send_all` (all callers that ran in the same scheduler tick share a write); the reader
task feeds hiredis and hands each reply to the oldest waiter. No task is spawned per
command and no lock is taken: trio only switches tasks at awaits.

A caller cancelled while waiting leaves its waiter in the queue with no task, so its
reply is still consumed and dropped: the FIFO never slips. A command whose *timeout*
expires breaks the connection instead, because a reply that late means the socket (or
the server) is stuck and every later waiter is stuck behind it. Timeouts are enforced
by one watchdog task per connection sleeping until the earliest pending deadline, not
by a cancel scope per command, which would cost more than the rest of the hot path.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import Any

import outcome
import trio
from trio.lowlevel import Abort, current_task, reschedule, wait_task_rescheduled

from ff.resp import errors
from ff.resp._commands import encode
from ff.resp._parser import NEED_DATA, PushNotification, ReplyReader
from ff.resp._transport import RECEIVE_SIZE, describe, open_transport
from ff.resp._url import ConnectionParams


class _Waiter:
    """A caller waiting for `count` replies. `task` is None once nobody is waiting."""

    __slots__ = ("count", "deadline", "replies", "task")

    def __init__(self, task: trio.lowlevel.Task | None, count: int, deadline: float) -> None:
        self.task = task
        self.count = count
        self.deadline = deadline
        self.replies: list[Any]  # only set (by `request`) when count > 1

    def abort(self, _raise_cancel: Any) -> Abort:
        self.task = None
        return Abort.SUCCEEDED


class Connection:
    """A connection shared by any number of tasks; pipelining happens automatically.

    Obtained from `client.dedicated()` (private to one user, for blocking commands) or
    owned by the client's pool. `run()` hosts the reader and writer tasks until the
    connection breaks or `close()` is called.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        reader: ReplyReader,
        params: ConnectionParams,
        *,
        command_timeout: float,
        on_broken: Callable[[Connection], None] | None = None,
    ) -> None:
        self._stream = stream
        self._reader = reader
        self._params = params
        self._command_timeout = command_timeout
        self._on_broken = on_broken
        self._waiters: deque[_Waiter] = deque()
        self._outbuf: list[bytes] = []
        self._writer: trio.lowlevel.Task | None = None
        self._writer_idle = False
        # True while queued frames wait for the idle writer to wake: joining them is free.
        self.batch_open = False
        self._watchdog: trio.CancelScope | None = None
        self._watchdog_deadline = math.inf
        self._scope: trio.CancelScope | None = None
        self.error: BaseException | None = None  # why the connection stopped, once it has

    @classmethod
    async def connect(
        cls,
        params: ConnectionParams,
        *,
        command_timeout: float,
        on_broken: Callable[[Connection], None] | None = None,
    ) -> Connection:
        """Open and handshake a connection; call `run()` (in a nursery) to start it."""
        stream, reader = await open_transport(params)
        return cls(stream, reader, params, command_timeout=command_timeout, on_broken=on_broken)

    @property
    def pending(self) -> int:
        """Replies this connection still owes its callers (a pipeline counts each)."""
        return len(self._waiters)

    async def execute(self, *args: str | bytes | int | float, timeout: float | None = None) -> Any:
        """Send one command and return its decoded reply; raise its error reply.

        `timeout` (default: the client's command timeout) must exceed the blocking time of
        a blocking command; `math.inf` waits for ever.
        """
        reply = await self.request(encode(args), 1, timeout)
        if isinstance(reply, errors.ResponseError):
            raise reply
        return reply

    async def request(self, frames: bytes, count: int, timeout: float | None) -> Any:
        """Queue `frames` (producing `count` replies) and wait: one reply, or a list."""
        if self.error is not None:
            raise self._lost()
        if timeout is None:
            timeout = self._command_timeout
        elif timeout <= 0:  # an exhausted budget: fail this call, not the shared connection
            raise errors.TimeoutError(f"no time left to send the command (timeout={timeout})")
        deadline = trio.current_time() + timeout
        waiter = _Waiter(current_task(), count, deadline)
        if deadline < self._watchdog_deadline and self._watchdog is not None:
            self._watchdog.deadline = self._watchdog_deadline = deadline
        if count == 1:
            self._waiters.append(waiter)
        else:
            waiter.replies = []
            self._waiters.extend([waiter] * count)
        self._outbuf.append(frames)
        if self._writer_idle:
            self._writer_idle = False
            self.batch_open = True
            reschedule(self._writer)  # type: ignore[arg-type]
        return await wait_task_rescheduled(waiter.abort)

    def close(self, reason: errors.ConnectionError | None = None) -> None:
        """Stop the connection; pending callers get `errors.ConnectionError`."""
        self._break(reason or errors.ConnectionError("the connection was closed"))

    async def run(self) -> None:
        """Run the reader and writer until the connection breaks or is closed.

        Never raises for a connection failure (the error is in `.error` and was delivered
        to the waiters), only for cancellation from outside.
        """
        try:
            if self.error is None:
                async with trio.open_nursery() as nursery:
                    self._scope = nursery.cancel_scope
                    nursery.start_soon(self._write_loop)
                    nursery.start_soon(self._watch_deadlines)
                    await self._read_loop()
        finally:
            self._break(errors.ConnectionError("the connection was closed"))
            await trio.aclose_forcefully(self._stream)

    async def _write_loop(self) -> None:
        self._writer = current_task()
        outbuf = self._outbuf
        send_all = self._stream.send_all
        try:
            while True:
                if not outbuf:
                    self._writer_idle = True
                    await wait_task_rescheduled(self._writer_abort)
                    continue
                self.batch_open = False
                data = outbuf[0] if len(outbuf) == 1 else b"".join(outbuf)
                outbuf.clear()
                await send_all(data)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._break(exc)

    async def _watch_deadlines(self) -> None:
        """Sleep until the earliest pending deadline; if it passed unanswered, break.

        `request` pulls the wake-up time forward when a command with a shorter timeout
        arrives; otherwise the watchdog wakes about once per command timeout.
        """
        while True:
            deadline = min((w.deadline for w in self._waiters), default=math.inf)
            with trio.CancelScope(deadline=deadline) as self._watchdog:
                self._watchdog_deadline = deadline
                await trio.sleep_forever()
            now = trio.current_time()
            expired = {w for w in self._waiters if w.deadline <= now}
            if expired:
                message = f"no reply from {self._params.address} before the command's deadline"
                for waiter in expired:
                    if waiter.task is not None:
                        reschedule(waiter.task, outcome.Error(errors.TimeoutError(message)))
                        waiter.task = None
                self._break(errors.TimeoutError(message))
                return

    def _writer_abort(self, _raise_cancel: Any) -> Abort:
        self._writer_idle = False
        return Abort.SUCCEEDED

    async def _read_loop(self) -> None:
        receive = self._stream.receive_some
        reader = self._reader
        waiters = self._waiters
        try:
            while True:
                data = await receive(RECEIVE_SIZE)
                if not data:
                    raise errors.ConnectionError("the server closed the connection")
                reader.feed(bytes(data))
                while (reply := reader.gets()) is not NEED_DATA:
                    if type(reply) is PushNotification:
                        continue  # e.g. CLIENT TRACKING invalidations: nobody asked
                    if not waiters:
                        raise errors.ProtocolError("a reply arrived that no command asked for")
                    waiter = waiters.popleft()
                    if waiter.count == 1:
                        if waiter.task is not None:
                            reschedule(waiter.task, outcome.Value(reply))
                    else:
                        waiter.replies.append(reply)
                        if len(waiter.replies) == waiter.count and waiter.task is not None:
                            reschedule(waiter.task, outcome.Value(waiter.replies))
        except (
            OSError, trio.BrokenResourceError, trio.ClosedResourceError, errors.ProtocolError
        ) as exc:
            self._break(exc)

    def _break(self, cause: BaseException) -> None:
        """Mark the connection dead (first cause wins) and fail everyone still waiting."""
        if self.error is not None:
            return
        self.error = cause
        self.batch_open = False
        self._outbuf.clear()
        for waiter in self._waiters:
            if waiter.task is not None:
                reschedule(waiter.task, outcome.Error(self._lost()))
                waiter.task = None
        self._waiters.clear()
        if self._scope is not None:
            self._scope.cancel()
        if self._on_broken is not None:
            self._on_broken(self)

    def _lost(self) -> errors.RespError:
        """A fresh exception for one caller of a connection that is gone."""
        if isinstance(self.error, errors.ClientClosedError):
            error: errors.RespError = errors.ClientClosedError(str(self.error))
        else:
            error = errors.ConnectionError(
                f"connection to {self._params.address} lost: {describe(self.error)}"
            )
        error.__cause__ = self.error
        return error
