"""HttpClient: a small async HTTP/1.1 client for the ff API, on trio + h11 like the server.

What lives here: `HttpClient` (a keep-alive connection pool with one deadline per request),
`HttpResponse`, and the errors: `HttpError` for transport failures (connect refused, reset,
timeout, protocol violations; `HttpTimeout` is the timeout case) and `HttpStatusError`, raised by
`HttpResponse.raise_for_status()` with the server's `{"error", "kind", "retryable"}` fields.
Typed API calls (create_execution, ...) belong on top of `request()`:

    response = await client.request("POST", "/v1/executions", json=args)
    created = response.raise_for_status().json(CreateExecutionResult)

Plain `http://` only; a TLS front (if any) terminates in front of ff.
"""

from __future__ import annotations

import select
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import h11
import msgspec
import trio

__all__ = ["HttpClient", "HttpError", "HttpResponse", "HttpStatusError", "HttpTimeout"]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_RECEIVE_SIZE = 64 * 1024
# Retrying is safe only where repeating the request cannot do a second, different thing.
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# Exceptions that mean "the connection failed", mapped to HttpError in one place.
_TRANSPORT_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError)


class HttpError(Exception):
    """The request did not get a complete HTTP response (the network or the peer failed)."""


class HttpTimeout(HttpError):
    """No complete response within the client's timeout."""


class _ErrorFields(msgspec.Struct):
    error: str = ""
    kind: str | None = None
    retryable: bool | None = None


class HttpStatusError(Exception):
    """A 4xx/5xx answer, with the fields of ff's JSON error body when it has one."""

    def __init__(self, response: HttpResponse) -> None:
        try:
            fields = msgspec.json.decode(response.body, type=_ErrorFields)
        except msgspec.DecodeError:
            fields = _ErrorFields(response.body[:200].decode("utf-8", "replace"))
        super().__init__(f"HTTP {response.status}: {fields.error}")
        self.response = response
        self.status = response.status
        self.error = fields.error
        self.kind = fields.kind
        self.retryable = fields.retryable


@dataclass(slots=True)
class HttpResponse:
    """A complete response: status, headers (lowercased names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self, type_: type[T] | Any = Any) -> T:
        """Decode the body as JSON, validated into `type_` when given (msgspec)."""
        return msgspec.json.decode(self.body, type=type_)  # type: ignore[no-any-return]

    def raise_for_status(self) -> HttpResponse:
        """Return self for 1xx-3xx; raise HttpStatusError for 4xx and 5xx."""
        if self.status >= 400:
            raise HttpStatusError(self)
        return self


class _StaleConnection(Exception):
    """A reused keep-alive connection died before any byte of the answer arrived."""


class _Connection:
    """One TCP connection and its h11 state; used by one request at a time."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    def looks_alive(self) -> bool:
        """An idle connection must not be readable: if it is, the server closed it (or sent
        something unsolicited), and reusing it would lose our request. poll() has no fd limit.
        """
        poller = select.poll()
        poller.register(self.stream.socket.fileno(), select.POLLIN)
        return not poller.poll(0)

    async def round_trip(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> HttpResponse:
        conn = self.h11
        data = conn.send(h11.Request(method=method, target=target, headers=headers))
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        received = False
        try:
            await self.stream.send_all(data)
            status = 0
            response_headers: dict[str, str] = {}
            chunks: list[bytes] = []
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    chunk = await self.stream.receive_some(_RECEIVE_SIZE)
                    received = received or bool(chunk)
                    conn.receive_data(chunk)
                elif type(event) is h11.Response:
                    status = event.status_code
                    for name, value in event.headers:
                        key, text = name.decode("latin-1"), value.decode("latin-1")
                        prior = response_headers.get(key)
                        response_headers[key] = text if prior is None else f"{prior}, {text}"
                elif type(event) is h11.Data:
                    chunks.append(event.data)
                elif type(event) is h11.EndOfMessage:
                    return HttpResponse(status, response_headers, b"".join(chunks))
                elif type(event) is h11.ConnectionClosed:
                    raise h11.RemoteProtocolError("connection closed before the response")
        except _TRANSPORT_ERRORS as exc:
            if not received:
                raise _StaleConnection from exc
            raise

    def reusable(self) -> bool:
        """After a full exchange: ready the next cycle if both sides kept the connection."""
        conn = self.h11
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
            return True
        return False


class HttpClient:
    """Async HTTP client with keep-alive reuse, for `http://host:port[/prefix]`.

    `timeout` bounds each request end to end (waiting for a pool slot excluded): connect,
    send, and the whole response. At most `max_connections` requests run at once; further
    callers wait for a slot. An idle connection the server has closed is detected and replaced;
    a reused connection that dies before any answer byte is retried once on a fresh one for
    idempotent methods only.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 64,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"HttpClient takes an http://host[:port] URL, got {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._prefix = parts.path.rstrip("/")
        host_header = f"[{self._host}]" if ":" in self._host else self._host
        if parts.port is not None:
            host_header += f":{parts.port}"
        self._base_headers = [("host", host_header), ("user-agent", "ff-client")]
        if token:
            self._base_headers.append(("authorization", f"Bearer {token}"))
        self._timeout = timeout
        self._slots = trio.CapacityLimiter(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the idle connections; requests in flight close theirs when they finish."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.stream.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole response; any status is returned, not raised.

        `json` (a msgspec Struct, dict, list, ...) is encoded with msgspec and sent as
        `application/json`; `body` sends raw bytes. Raises HttpError (HttpTimeout) when no
        complete response arrives.
        """
        if json is not None and body is not None:
            raise ValueError("pass json= or body=, not both")
        payload = _encoder.encode(json) if json is not None else (body or b"")
        request_headers = list(self._base_headers)
        if json is not None:
            request_headers.append(("content-type", "application/json"))
        if payload or method in ("POST", "PUT", "PATCH"):
            request_headers.append(("content-length", str(len(payload))))
        if headers:
            given = {name.lower() for name in headers}
            request_headers = [h for h in request_headers if h[0] not in given]
            request_headers.extend(headers.items())
        target = self._prefix + path
        async with self._slots:
            try:
                with trio.fail_after(self._timeout):
                    return await self._send(method, target, request_headers, payload)
            except trio.TooSlowError:
                raise HttpTimeout(
                    f"{method} {target}: no response within {self._timeout}s"
                ) from None
            except _TRANSPORT_ERRORS as exc:
                raise HttpError(f"{method} {target}: {exc!r}") from exc

    async def _send(
        self, method: str, target: str, headers: list[tuple[str, str]], payload: bytes
    ) -> HttpResponse:
        if self._closed:
            raise HttpError("the client is closed")
        while True:
            connection, reused = await self._checkout()
            try:
                response = await connection.round_trip(method, target, headers, payload)
            except _StaleConnection as exc:
                await connection.stream.aclose()
                if reused and method in _IDEMPOTENT:
                    continue
                raise HttpError(f"{method} {target}: connection lost") from exc.__cause__
            except BaseException:
                await trio.aclose_forcefully(connection.stream)
                raise
            if connection.reusable() and not self._closed:
                self._idle.append(connection)
            else:
                await connection.stream.aclose()
            return response

    async def _checkout(self) -> tuple[_Connection, bool]:
        """The most recently used live idle connection, else a new one."""
        while self._idle:
            connection = self._idle.pop()
            if connection.looks_alive():
                return connection, True
            await connection.stream.aclose()
        return _Connection(await trio.open_tcp_stream(self._host, self._port)), False
