"""Routes of the streams area: read a page of an attempt's frames, tail it (long poll, or
Server-Sent Events with `Accept: text/event-stream`), and read its summary document.

SSE form of the tail: one `frame` event per frame (`id:` the frame id, `data:` the frame as
JSON), a `: keep-alive` comment after each quiet wait, and a last `closed` event
(`data: {"closed_at", "closed_reason"}`) once the attempt's stream is closed; then the
response ends. A reconnecting EventSource sends `Last-Event-ID`, which wins over `after`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from ff.api.streams import Follow
from ff.core import limits
from ff.core.records import StreamFrames, StreamSummary
from ff.http._codec import query_int, query_str
from ff.http._message import ApiError, Request, Response, json_response
from ff.server import Server

from ._common import AddRoute

READ_LIMIT_DEFAULT = 100
TAIL_LIMIT_DEFAULT = 50
# A tail may block 30 s; its answer must still fit in the route's time.
TAIL_ROUTE_TIMEOUT_S = limits.STREAM_TAIL_BLOCK_MAX_MS / 1000 + 10
EVENT_STREAM = "text/event-stream"
_encoder = msgspec.json.Encoder()


class _Closed(msgspec.Struct):
    closed_at: int | None
    closed_reason: str | None


def _attempt_index(request: Request) -> int:
    raw = request.path_params["idx"]
    if not raw.isdigit() or int(raw) > 2**32 - 1:
        raise ApiError(400, f"attempt index must be an integer 0..4294967295, got {raw[:20]!r}",
                       kind="invalid_path")
    return int(raw)


def _limit(request: Request, default: int) -> int:
    return query_int(request, "limit", default, minimum=1,
                     maximum=limits.STREAM_READ_LIMIT_MAX)


def sse_events(page: StreamFrames) -> bytes:
    """The SSE text for one page: its frames, then `closed` if the page carries it."""
    parts = [b"id: %s\nevent: frame\ndata: %s\n\n" % (frame.id.encode(), _encoder.encode(frame))
             for frame in page.frames]
    if page.closed_at is not None:
        closed = _encoder.encode(_Closed(page.closed_at, page.closed_reason))
        parts.append(b"event: closed\ndata: %s\n\n" % closed)
    return b"".join(parts)


class _EventStream:
    """The SSE body: a follow of the attempt's stream until it closes."""

    def __init__(self, follow: Follow) -> None:
        self.follow = follow

    async def write(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        async def on_page(page: StreamFrames) -> None:
            await send(sse_events(page))

        async def on_idle() -> None:
            await send(b": keep-alive\n\n")

        await send(b": following\n\n")
        await self.follow.run(on_page, on_idle)

    def close(self) -> None:
        self.follow.release()


class _Handlers:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def read(self, request: Request) -> Response:
        page = await self.server.read_attempt_stream(
            request.path_params["id"], _attempt_index(request),
            from_id=query_str(request, "from", "start"), to_id=query_str(request, "to", "end"),
            count_limit=_limit(request, READ_LIMIT_DEFAULT))
        return json_response(200, page)

    async def tail(self, request: Request) -> Response:
        if EVENT_STREAM in request.headers.get("accept", ""):
            return await self._follow(request)
        page = await self.server.tail_attempt_stream(
            request.path_params["id"], _attempt_index(request),
            after=query_str(request, "after", "0-0"),
            block_ms=query_int(request, "block_ms", 0, minimum=0,
                               maximum=limits.STREAM_TAIL_BLOCK_MAX_MS),
            count_limit=_limit(request, TAIL_LIMIT_DEFAULT))
        return json_response(200, page)

    async def _follow(self, request: Request) -> Response:
        after = request.headers.get("last-event-id") or query_str(request, "after", "0-0")
        follow = self.server.open_follow(
            request.path_params["id"], _attempt_index(request), after=after,
            count_limit=_limit(request, TAIL_LIMIT_DEFAULT))
        try:
            await follow.check()
        except BaseException:
            follow.release()
            raise
        return Response(200, content_type=EVENT_STREAM, stream=_EventStream(follow),
                        headers=[("cache-control", "no-store")])

    async def summary(self, request: Request) -> Response:
        summary = await self.server.read_summary(request.path_params["id"],
                                                 _attempt_index(request))
        return json_response(200, summary)


def register(add: AddRoute, server: Server) -> None:
    h = _Handlers(server)
    attempt = "/v1/executions/{id}/attempts/{idx}"
    add("GET", f"{attempt}/stream", h.read, response_type=StreamFrames,
        summary="Read a page of an attempt's output frames (from/to cursors, limit 1..1000)")
    add("GET", f"{attempt}/stream/tail", h.tail, response_type=StreamFrames,
        timeout=TAIL_ROUTE_TIMEOUT_S,
        summary="Wait for frames after a cursor (block_ms <= 30000); with Accept: "
                "text/event-stream, Server-Sent Events until the stream closes")
    add("GET", f"{attempt}/summary", h.summary, response_type=StreamSummary,
        summary="Read an attempt's summary document")
