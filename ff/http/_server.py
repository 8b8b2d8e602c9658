"""serve_http: the trio + h11 adapter that feeds sockets into an HttpApp.

What lives here: the accept loops, one task per connection, the h11 state machine per
connection, timeouts, the connection limit and graceful shutdown. Every decision about a
request (auth, routing, limits, errors) is `HttpApp`'s; this module only moves bytes and
enforces time.

Timeouts, all per connection:
- `idle_timeout`: a keep-alive connection with no request in progress is closed.
- `header_timeout`: once the first byte of a request has arrived, the whole head must follow
  in time, else 408 and close (slow-loris defence). The head is also capped at
  `max_header_bytes` and `max_header_count` header lines (431 and close beyond either).
- `request_timeout` (or the route's own `timeout`): from the end of the head, the body must
  arrive (else 408 and close) and the handler must answer (else 503 `timeout`, retryable).
- sending a response is bounded by `request_timeout` too, so a client that never reads cannot
  pin a task.

Connection limit: at `max_connections` open connections the accept loop stops accepting, so new
clients wait in the kernel's listen backlog until a connection ends (backpressure, no 503
storm; keep-alive connections free their slot at `idle_timeout` at the latest).

Graceful shutdown (the serve task is cancelled, or `shutdown` is set): stop accepting and
close the listeners, close idle keep-alive connections at once, let requests in progress
finish (their answers carry `Connection: close`) for up to `shutdown_grace`, then cancel what
is left. Connection tasks run under a shielded scope so that cancelling the serve task starts
this sequence instead of killing them mid-response.

Streamed bodies (`Response.stream`, the SSE tail): the head, then chunks as the body's writer
produces them, each send bounded by `request_timeout`; drain() ends the body early, and the
connection closes after it.

What must not live here: routing, JSON, auth, or anything a handler decides.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Iterable
from http import HTTPStatus

import h11
import trio

from ._app import Exchange, HttpApp
from ._message import ApiError, Response

__all__ = ["serve_http"]

log = logging.getLogger("ff.http")

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}
_RECEIVE_SIZE = 64 * 1024
# An early answer (401, 404, ...) still reads and drops a body up to this size, so the
# connection can be kept; larger bodies are not worth reading and the connection closes.
_DISCARD_LIMIT = 64 * 1024
# Closing with unread request bytes makes the kernel send RST, which can destroy the answer
# we just wrote before the client reads it. So we half-close and drain for a moment first.
_LINGER_SECONDS = 1.0
_LINGER_BYTES = 4 * 1024 * 1024
# accept() failures that mean "out of resources right now": wait and retry, as trio does.
_ACCEPT_RETRY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_NO_BODY_STATUSES = frozenset({204, 304})


async def serve_http(
    app: HttpApp,
    host: str | None,
    port: int,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    max_connections: int = 1024,
    request_timeout: float = 30.0,
    idle_timeout: float = 60.0,
    header_timeout: float = 10.0,
    shutdown_grace: float = 10.0,
    max_header_bytes: int = 16 * 1024,
    max_header_count: int = 100,
    shutdown: trio.Event | None = None,
) -> None:
    """Serve `app` on `host:port` until cancelled or until `shutdown` is set.

    Calls `task_status.started(port)` once bound (port 0 binds an ephemeral port; with a
    host that resolves to several addresses, the first listener's port is reported). Returns
    after a graceful shutdown triggered by `shutdown`; re-raises Cancelled otherwise.
    """
    if max_connections < 1:
        raise ValueError("max_connections must be >= 1")
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound_port: int = listeners[0].socket.getsockname()[1]
    server = _Server(
        app,
        max_connections=max_connections,
        request_timeout=request_timeout,
        idle_timeout=idle_timeout,
        header_timeout=header_timeout,
        max_header_bytes=max_header_bytes,
        max_header_count=max_header_count,
    )
    try:
        async with trio.open_nursery() as outer:
            connections: trio.Nursery = await outer.start(server.host_connections)
            try:
                async with trio.open_nursery() as accepting:
                    if shutdown is not None:
                        accepting.start_soon(_cancel_when_set, shutdown, accepting.cancel_scope)
                    for listener in listeners:
                        accepting.start_soon(server.accept_loop, listener, connections)
                    log.info("http: listening on %s:%d", host or "*", bound_port)
                    task_status.started(bound_port)
            finally:
                for listener in listeners:
                    listener.socket.close()
                server.drain(shutdown_grace)
    finally:
        for listener in listeners:
            listener.socket.close()  # idempotent; covers a failure before accepting began


async def _cancel_when_set(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


class _Server:
    """State shared by the connections of one serve_http call."""

    def __init__(
        self,
        app: HttpApp,
        *,
        max_connections: int,
        request_timeout: float,
        idle_timeout: float,
        header_timeout: float,
        max_header_bytes: int,
        max_header_count: int,
    ) -> None:
        self.app = app
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count
        self.draining = False
        self.idle: set[trio.CancelScope] = set()
        self.streaming: set[trio.CancelScope] = set()  # streamed bodies, ended by drain()
        self._slots = trio.Semaphore(max_connections)
        self._hosting_scope = trio.CancelScope(shield=True)
        self._stop_hosting = trio.Event()

    async def host_connections(self, task_status: trio.TaskStatus[trio.Nursery]) -> None:
        """Own the connection tasks, shielded from the serve task's cancellation.

        Only `drain()` ends this: it sets a deadline on the shield's scope and lets the
        nursery wait for the connections still running.
        """
        with self._hosting_scope:
            async with trio.open_nursery() as connections:
                task_status.started(connections)
                await self._stop_hosting.wait()

    def drain(self, grace: float) -> None:
        """Begin graceful shutdown: close idle connections now, the rest within `grace`."""
        self.draining = True
        for scope in (*self.idle, *self.streaming):
            scope.cancel()
        self._hosting_scope.deadline = trio.current_time() + grace
        self._stop_hosting.set()

    async def accept_loop(self, listener: trio.SocketListener, connections: trio.Nursery) -> None:
        while True:
            await self._slots.acquire()
            try:
                stream = await listener.accept()
            except OSError as exc:
                self._slots.release()
                if exc.errno not in _ACCEPT_RETRY_ERRNOS:
                    raise
                log.warning("http: accept failed, retrying: %s", exc)
                await trio.sleep(0.1)
                continue
            except BaseException:
                self._slots.release()
                raise
            connections.start_soon(self.serve_connection, stream)

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        try:
            try:
                await _Connection(self, stream).run()
            except (trio.BrokenResourceError, trio.ClosedResourceError, _ClientGone):
                pass  # the client went away; nothing to answer
            except Exception:
                log.exception("http: connection failed")
            finally:
                await stream.aclose()
        finally:
            self._slots.release()


class _ClientGone(Exception):
    """The client closed its side before the request was complete."""


def _decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[dict[str, str], int]:
    """Headers as a dict of lowercased names (repeats joined with ", "), and their size."""
    headers: dict[str, str] = {}
    size = 0
    for name, value in raw:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
        size += len(key) + len(text) + 4
    return headers, size


class _Connection:
    """One TCP connection: a loop of read head -> (read body) -> answer, in order."""

    def __init__(self, server: _Server, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=server.max_header_bytes)
        self.method = b""
        try:
            peer = stream.socket.getpeername()
            self.remote: str | None = f"{peer[0]}:{peer[1]}"
        except OSError:  # already reset by the peer
            self.remote = None

    async def run(self) -> None:
        while True:
            request = await self._read_head()
            if request is None:
                return
            if not await self._answer(request):
                return
            self.h11.start_next_cycle()

    async def _receive(self, deadline: float) -> bool:
        """Feed the next bytes (or EOF) to h11; False if `deadline` passed first."""
        with trio.move_on_at(deadline):
            self.h11.receive_data(await self.stream.receive_some(_RECEIVE_SIZE))
            return True
        return False

    async def _receive_idle(self) -> bool:
        """Wait for the next request's first bytes; drain() may cut the wait short."""
        scope = trio.CancelScope(deadline=trio.current_time() + self.server.idle_timeout)
        self.server.idle.add(scope)
        try:
            with scope:
                self.h11.receive_data(await self.stream.receive_some(_RECEIVE_SIZE))
                return True
            return False
        finally:
            self.server.idle.discard(scope)

    async def _read_head(self) -> h11.Request | None:
        """The next request head, or None once the connection should just close."""
        conn = self.h11
        self.method = b""
        head_deadline = math.inf
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._send_error(exc.error_status_hint, f"malformed HTTP request: {exc}")
                return None
            if type(event) is h11.Request:
                self.method = event.method
                return event
            if event is not h11.NEED_DATA:
                return None  # ConnectionClosed
            if head_deadline == math.inf and not conn.trailing_data[0]:
                if self.server.draining or not await self._receive_idle():
                    return None
                continue
            if head_deadline == math.inf:
                head_deadline = trio.current_time() + self.server.header_timeout
            if not await self._receive(head_deadline):
                await self._send_error(408, "request head not received in time")
                return None

    async def _answer(self, event: h11.Request) -> bool:
        """Answer one request; True if the connection can carry the next one."""
        conn = self.h11
        app = self.server.app
        if len(event.headers) > self.server.max_header_count:
            await self._send_error(431, "too many request headers")
            return False
        headers, size = _decode_headers(event.headers)
        if size + len(event.target) > self.server.max_header_bytes:
            # h11 only caps a head that arrives in pieces; one that came whole is checked here.
            await self._send_error(431, "request head too large")
            return False
        exchange = app.start(
            event.method.decode("ascii"),
            event.target.decode("latin-1"),
            headers,
            remote=self.remote,
        )
        timeout = exchange.timeout if exchange.timeout is not None else self.server.request_timeout
        deadline = trio.current_time() + timeout
        close = False
        response = exchange.response
        if response is None:
            body, failure = await self._read_body(exchange, deadline)
            if failure is None:
                response = await app.dispatch(exchange, body, deadline)
            else:
                response, close = failure, True
        elif conn.their_state is h11.SEND_BODY:
            close = not await self._discard_body(headers, deadline)
        response = app.complete(exchange, response)
        close = close or self.server.draining
        if not await self._send(response, close):
            return False
        if close:
            await self._linger()
            return False
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _read_body(
        self, exchange: Exchange, deadline: float
    ) -> tuple[bytes, Response | None]:
        """The whole body within the route's cap, or the response that ends the request."""
        conn = self.h11
        if conn.they_are_waiting_for_100_continue:
            with trio.move_on_at(deadline):
                continue_ = h11.InformationalResponse(status_code=100, headers=[])
                await self.stream.send_all(conn.send(continue_))
        limit = exchange.body_limit
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if conn.trailing_data[1]:
                    raise _ClientGone from exc
                error = ApiError(400, f"malformed HTTP request: {exc}", kind="bad_request")
                return b"", error.to_response()
            if type(event) is h11.Data:
                size += len(event.data)
                if size > limit:
                    return b"", self.server.app.too_large(exchange)
                chunks.append(event.data)
            elif type(event) is h11.EndOfMessage:
                return b"".join(chunks), None
            elif event is h11.NEED_DATA:
                if not await self._receive(deadline):
                    error = ApiError(408, "request body not received in time", kind="timeout")
                    return b"", error.to_response()
            else:
                raise _ClientGone

    async def _discard_body(self, headers: dict[str, str], deadline: float) -> bool:
        """Read and drop a small body after an early answer; False if the connection must close."""
        conn = self.h11
        declared = headers.get("content-length")
        if conn.they_are_waiting_for_100_continue or (
            declared is not None and (not declared.isdigit() or int(declared) > _DISCARD_LIMIT)
        ):
            return False
        dropped = 0
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return False
            if type(event) is h11.Data:
                dropped += len(event.data)
                if dropped > _DISCARD_LIMIT:
                    return False
            elif type(event) is h11.EndOfMessage:
                return True
            elif event is not h11.NEED_DATA or not await self._receive(deadline):
                return False

    async def _send(self, response: Response, close: bool) -> bool:
        """Write one response in a single send; False if the client does not take it in time."""
        if response.stream is not None:
            return await self._send_streamed(response)
        conn = self.h11
        status = response.status
        headers: list[tuple[bytes, bytes]] = []
        body = response.body
        if status not in _NO_BODY_STATUSES:
            if response.content_type is not None:
                headers.append((b"content-type", response.content_type.encode("latin-1")))
            headers.append((b"content-length", str(len(body)).encode()))
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers)
        if close:
            headers.append((b"connection", b"close"))
        data = conn.send(
            h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))
        )
        if body and self.method != b"HEAD" and status not in _NO_BODY_STATUSES:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        with trio.move_on_after(self.server.request_timeout):
            await self.stream.send_all(data)
            return True
        return False

    async def _send_streamed(self, response: Response) -> bool:
        """Head, then the body as its writer produces it (chunked), each piece within
        `request_timeout`; drain() ends the body early. The connection closes after it."""
        body = response.stream
        assert body is not None
        conn = self.h11
        send_all = self.stream.send_all
        timeout = self.server.request_timeout
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
        if response.content_type is not None:
            headers.append((b"content-type", response.content_type.encode("latin-1")))
        headers.append((b"connection", b"close"))
        head = h11.Response(status_code=response.status, headers=headers,
                            reason=_REASONS.get(response.status, b""))

        async def send(chunk: bytes) -> None:
            with trio.fail_after(timeout):
                await send_all(conn.send(h11.Data(data=chunk)))

        scope = trio.CancelScope()
        self.server.streaming.add(scope)
        try:
            if self.server.draining:
                scope.cancel()
            with trio.fail_after(timeout):
                await send_all(conn.send(head))
            with scope:
                await body.write(send)
            with trio.move_on_after(timeout):
                await send_all(conn.send(h11.EndOfMessage()))
        except trio.TooSlowError:
            pass  # a client that stopped reading; the connection closes
        finally:
            self.server.streaming.discard(scope)
            body.close()
        return False

    async def _send_error(self, status: int, message: str) -> None:
        """Answer a request we could not parse (400/408/431), then close with a linger."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        kind = "timeout" if status == 408 else "bad_request"
        if await self._send(ApiError(status, message, kind=kind).to_response(), close=True):
            await self._linger()

    async def _linger(self) -> None:
        """Half-close, then drop what the client still sends, briefly, before the close."""
        with trio.move_on_after(_LINGER_SECONDS):
            await self.stream.send_eof()
            received = 0
            while received < _LINGER_BYTES:
                data = await self.stream.receive_some(_RECEIVE_SIZE)
                if not data:
                    return
                received += len(data)
