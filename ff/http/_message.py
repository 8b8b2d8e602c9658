"""Request and Response values, response helpers and ApiError.

What lives here: the two plain types every handler sees, the helpers that build responses, the
JSON error body (`{"error", "kind"?, "retryable"?}`) and `ApiError`, which handlers raise to
answer with that body. Pure data: nothing here touches sockets, h11 or trio.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

__all__ = [
    "ApiError",
    "ErrorBody",
    "Handler",
    "PayloadTooLarge",
    "Request",
    "Response",
    "StreamBody",
    "empty_response",
    "json_response",
    "raw_response",
]

JSON = "application/json"


def encode_fallback(obj: Any) -> Any:
    """msgspec's fallback: str subclasses (ids such as `ExecutionId`) encode as their text."""
    if isinstance(obj, str):
        return str(obj)
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


# One encoder for the process: msgspec encoders are reusable and cheaper than encode().
_encoder = msgspec.json.Encoder(enc_hook=encode_fallback)


@dataclass(slots=True)
class Request:
    """One HTTP request as a handler sees it.

    `headers` has lowercased names (repeated headers joined with ", "), `query` maps each name to
    every value given, in order, and `path_params` holds the percent-decoded `{param}` segments
    of the matched route. `route` is the matched template, e.g. "/v1/executions/{id}/state";
    `remote` is the peer as "host:port" when the request came over a socket.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)
    route: str | None = None
    remote: str | None = None


class StreamBody(Protocol):
    """A body written piece by piece after the head (Server-Sent Events).

    `write(send)` calls `send(chunk)` as pieces are ready and returns at the end of the
    body; the server cancels it when the client is gone or shutdown begins. `close()` is
    called exactly once afterwards, whether `write` ran or not.
    """

    async def write(self, send: Callable[[bytes], Awaitable[None]]) -> None: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class Response:
    """A response: a body in memory, or (`stream`) one written as it is produced."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: StreamBody | None = None


Handler = Callable[[Request], Awaitable[Response]]


def json_response(
    status: int, obj: Any, *, headers: list[tuple[str, str]] | None = None
) -> Response:
    """`obj` (msgspec Struct, dict, list, str, ...) as JSON; a bare `"Ok"` stays a JSON string."""
    return Response(status, _encoder.encode(obj), JSON, headers if headers is not None else [])


def raw_response(
    status: int,
    body: bytes,
    content_type: str = "application/octet-stream",
    *,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    """Bytes sent as they are, e.g. an execution result."""
    return Response(status, body, content_type, headers if headers is not None else [])


def empty_response(status: int, *, headers: list[tuple[str, str]] | None = None) -> Response:
    """No body at all (204 on the claim route when there is no work)."""
    return Response(status, b"", None, headers if headers is not None else [])


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """The error body of every non-2xx JSON answer; absent `kind`/`retryable` are omitted."""

    error: str
    kind: str | None = None
    retryable: bool | None = None


class PayloadTooLarge(msgspec.Struct, kw_only=True):
    """The structured 413 body: the cap and the route template that imposed it."""

    error: str = "payload_too_large"
    limit_bytes: int
    route: str


class ApiError(Exception):
    """Raised by a handler (or a decoding helper) to answer with a JSON error body.

    `headers` lets an error carry what the success would have carried, e.g. the token route's
    `Cache-Control: no-store` on its 404.
    """

    def __init__(
        self,
        status: int,
        error: str,
        *,
        kind: str | None = None,
        retryable: bool | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.kind = kind
        self.retryable = retryable
        self.headers = headers if headers is not None else []

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.error!r}, kind={self.kind!r})"

    def to_response(self) -> Response:
        body = ErrorBody(self.error, self.kind, self.retryable)
        return json_response(self.status, body, headers=list(self.headers))
