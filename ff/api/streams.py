"""Attempt output streams from the reader's side: a page of frames (`read_attempt_stream`),
a blocking tail (`tail_attempt_stream`, XREAD BLOCK on a connection of its own), a follow
that keeps tailing until the stream closes (the SSE route), and the summary document.

Reads and tails share the stream-ops gate (`StreamOps`): a call that finds no permit is
refused at once (429, retryable), and once shutdown begins every new call gets 503.
Appends are the lease holder's (ff/worker/_frames.py), straight to Valkey.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import trio

from ff.api._parts import ServerParts
from ff.config import ServerConfig
from ff.core import limits
from ff.core.errors import (
    FFError,
    RateLimitedError,
    UnavailableError,
    ValidationError,
    error_for_code,
)
from ff.core.ids import ExecutionId
from ff.core.keys import ExecKeys
from ff.core.records import StreamFrame, StreamFrames, StreamSummary
from ff.resp import Client
from ff.script import stream as stream_fns
from ff.script.library import text
from ff.script.stream import closed_markers

_CONCRETE = re.compile(r"\d{1,20}(-\d{1,20})?")
# Margin over a blocking XREAD's own time before its connection is given up on.
_BLOCK_MARGIN_S = 5.0
# A follow blocks this long per XREAD, so it notices an attempt that ended without ever
# writing a frame (no XADD wakes it) and a gone client (the keep-alive write fails).
FOLLOW_BLOCK_MS = 5_000


class StreamOps:
    """The stream-ops gate: `max_ops` reads or tails at once, refused (never queued)
    beyond; closed at shutdown."""

    def __init__(self, max_ops: int) -> None:
        self.max_ops = max_ops
        self.in_use = 0
        self.closed = False

    @contextmanager
    def permit(self) -> Iterator[None]:
        self.take()
        try:
            yield
        finally:
            self.give_back()

    def take(self) -> None:
        if self.closed:
            error: FFError = UnavailableError("unavailable", "stream_ops: the server is "
                                              "shutting down")
            error.retryable = False
            raise error
        if self.in_use >= self.max_ops:
            retry_after = max(25, 25 * self.max_ops // (self.max_ops - self.in_use + 1))
            raise RateLimitedError("resource_exhausted", f"stream_ops: {self.max_ops} in use; "
                                   f"retry after {retry_after} ms")
        self.in_use += 1

    def give_back(self) -> None:
        self.in_use -= 1

    async def close(self, timeout: float) -> bool:
        """Refuse new calls, then wait up to `timeout` s for the running ones; True if
        they all ended."""
        self.closed = True
        with trio.move_on_after(timeout):
            while self.in_use:
                await trio.sleep(0.025)
            return True
        return False


def parse_cursor(value: str, name: str, *, open_ends: bool) -> str:
    """A cursor as an XRANGE/XREAD id: `<ms>` or `<ms>-<seq>`, and with `open_ends`
    `start` / `end` too. Bare `-` / `+` and empty are refused."""
    if open_ends and value in ("start", "end"):
        return "-" if value == "start" else "+"
    if not _CONCRETE.fullmatch(value):
        allowed = "start, end, " if open_ends else ""
        raise ValidationError("invalid_cursor", f"{name}: expected {allowed}<ms> or "
                              f"<ms>-<seq>, got {value[:40]!r}")
    return value


def check_limit(value: int, name: str, maximum: int) -> None:
    if not 1 <= value <= maximum:
        raise ValidationError("invalid_input", f"{name} must be 1..{maximum}, got {value}")


def _xread_entries(reply: Any) -> list[object]:
    """The entries of a one-stream XREAD reply (RESP3 map or RESP2 list; nil = none)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return next(iter(reply.values()))
    return reply[0][1]


class _Attempt:
    """One attempt's stream keys and the reads a tail makes around its XREAD."""

    def __init__(self, client: Client, execution_id: str, attempt_index: int) -> None:
        self.client = client
        self.eid = execution_id
        self.idx = attempt_index
        keys = ExecKeys(execution_id)
        self.core, self.stream = keys.core, keys.stream(attempt_index)
        self.meta, self.attempt = keys.stream_meta(attempt_index), keys.attempt(attempt_index)

    async def closed(self, *, check_exists: bool = False) -> tuple[int | None, str | None]:
        """The terminal markers; with `check_exists`, not-found errors for an unknown
        execution or attempt first."""
        closed, _ = await self.probe(check_exists=check_exists)
        return closed

    async def probe(self, *, check_exists: bool = False, after: str | None = None,
                    count: int = 0) -> tuple[tuple[int | None, str | None], list[object]]:
        """One round trip: the terminal markers and then (with `after`) the entries after
        `after`, read without blocking; the markers are read first, so markers that say
        closed cover every entry."""
        pipe = self.client.pipeline()
        pipe.execute_command("HGET", self.core, "total_attempt_count")
        pipe.execute_command("HMGET", self.meta, "closed_at", "closed_reason")
        pipe.execute_command("HMGET", self.attempt, "ended_at", "attempt_state")
        if after is not None:
            pipe.execute_command("XREAD", "COUNT", count, "STREAMS", self.stream, after)
        total, meta, attempt, *read = await pipe.run(raise_on_error=True)
        if check_exists:
            if total is None:
                raise error_for_code("execution_not_found", self.eid)
            if self.idx >= int(total):
                raise error_for_code("attempt_not_found", f"{self.eid}:{self.idx}")
        closed = closed_markers(text(meta[0]), text(meta[1]), text(attempt[0]), text(attempt[1]))
        return closed, _xread_entries(read[0]) if read else []

    async def xread(self, after: str, count: int, *, conn: Any = None, block_ms: int = 0
                    ) -> list[object]:
        """Entries after `after`; blocking (on `conn`, a dedicated connection) when
        `block_ms` > 0."""
        if block_ms <= 0:
            reply = await self.client.execute("XREAD", "COUNT", count, "STREAMS", self.stream,
                                              after)
        else:
            reply = await conn.execute("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS",
                                       self.stream, after,
                                       timeout=block_ms / 1000 + _BLOCK_MARGIN_S)
        return _xread_entries(reply)


def _page(entries: list[object], closed: tuple[int | None, str | None]) -> StreamFrames:
    frames = stream_fns.parse_frames(entries)
    return StreamFrames(frames, len(frames), closed[0], closed[1])


class StreamsApi(ServerParts):
    def __init__(self, config: ServerConfig, client: Client) -> None:
        super().__init__(config, client)
        self.stream_ops = StreamOps(config.max_concurrent_stream_ops)

    async def read_attempt_stream(self, execution_id: str, attempt_index: int, *,
                                  from_id: str = "start", to_id: str = "end",
                                  count_limit: int = 100) -> StreamFrames:
        """Frames from `from_id` to `to_id` (both inclusive) and the terminal markers."""
        eid = ExecutionId.parse(execution_id)
        start = parse_cursor(from_id, "from", open_ends=True)
        end = parse_cursor(to_id, "to", open_ends=True)
        check_limit(count_limit, "limit", limits.STREAM_READ_LIMIT_MAX)
        _check_index(attempt_index)
        with self.stream_ops.permit():
            return await stream_fns.read_attempt_stream(
                self.library, eid, attempt_index, from_id=start, to_id=end, count=count_limit)

    async def tail_attempt_stream(self, execution_id: str, attempt_index: int, *,
                                  after: str = "0-0", block_ms: int = 0,
                                  count_limit: int = 50) -> StreamFrames:
        """Frames after `after` (exclusive), waiting up to `block_ms` for the first one.

        `closed_at` / `closed_reason` are set when the stream was closed before the frames
        were read, so a page that carries them and fewer frames than asked for is the end.
        A wait that ended (frames or none) carries none: ask again with the new cursor."""
        eid = ExecutionId.parse(execution_id)
        cursor = parse_cursor(after, "after", open_ends=False)
        check_limit(count_limit, "limit", limits.STREAM_READ_LIMIT_MAX)
        _check_block(block_ms)
        _check_index(attempt_index)
        attempt = _Attempt(self._client, eid, attempt_index)
        with self.stream_ops.permit():
            closed, entries = await attempt.probe(check_exists=True, after=cursor,
                                                  count=count_limit)
            if entries or closed[0] is not None or block_ms == 0:
                return _page(entries, closed)
            async with self._client.dedicated() as conn:
                entries = await attempt.xread(cursor, count_limit, conn=conn, block_ms=block_ms)
            # Markers read after the XREAD could cover frames it did not return; the next
            # call reads them first and then the rest, so a page with markers is complete.
            return _page(entries, (None, None))

    def open_follow(self, execution_id: str, attempt_index: int, *, after: str = "0-0",
                    count_limit: int = 100) -> Follow:
        """A follow of the stream until it closes (the SSE route). Takes a stream-ops
        permit now (refused like a tail); `Follow.run` gives it back."""
        eid = ExecutionId.parse(execution_id)
        cursor = parse_cursor(after, "after", open_ends=False)
        check_limit(count_limit, "limit", limits.STREAM_READ_LIMIT_MAX)
        _check_index(attempt_index)
        self.stream_ops.take()
        return Follow(self.stream_ops, _Attempt(self._client, eid, attempt_index), cursor,
                      count_limit)

    async def read_summary(self, execution_id: str, attempt_index: int) -> StreamSummary:
        """The attempt's summary document (None until a summary frame is appended)."""
        eid = ExecutionId.parse(execution_id)
        _check_index(attempt_index)
        return await stream_fns.read_summary(self.library, eid, attempt_index)


OnPage = Callable[[StreamFrames], Awaitable[None]]


class Follow:
    """Tails one attempt's stream until it closes, handing each page to a callback. Holds
    a stream-ops permit and (while running) one dedicated connection."""

    def __init__(self, ops: StreamOps, attempt: _Attempt, after: str, count: int) -> None:
        self._ops = ops
        self._attempt = attempt
        self._after = after
        self._count = count
        self._released = False

    async def check(self) -> None:
        """Raises the not-found error for an unknown execution or attempt."""
        await self._attempt.closed(check_exists=True)

    async def run(self, on_page: OnPage, on_idle: Callable[[], Awaitable[None]]) -> None:
        """`on_page` per batch of frames (the last page carries the terminal markers);
        `on_idle` after each block that found nothing. Returns once the stream closed.

        While frames flow, the close is seen as the engine's `stream_closed` frame (the
        last XADD a stream gets), so no round trip is added per page; the meta (and, for
        an attempt that never wrote, the attempt hash) is read only after a quiet block.
        """
        attempt = self._attempt
        try:
            async with attempt.client.dedicated() as conn:
                closed = await attempt.closed()
                while True:
                    block = 0 if closed[0] is not None else FOLLOW_BLOCK_MS
                    entries = await attempt.xread(self._after, self._count, conn=conn,
                                                  block_ms=block)
                    if entries:
                        page = _page(entries, (None, None))
                        self._after = page.frames[-1].id
                        if _is_close_marker(page.frames[-1]):
                            closed = await attempt.closed()
                            page = StreamFrames(page.frames, page.count, *closed)
                            await on_page(page)
                            return
                        await on_page(page)
                    elif closed[0] is not None:
                        await on_page(_page([], closed))
                        return
                    else:
                        await on_idle()
                        closed = await attempt.closed()
        finally:
            self.release()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._ops.give_back()


def _is_close_marker(frame: StreamFrame) -> bool:
    fields = frame.fields
    return fields.get("frame_type") == "stream_closed" and fields.get("source") == "engine"


def _check_index(attempt_index: int) -> None:
    if not 0 <= attempt_index <= 2**32 - 1:
        raise ValidationError("invalid_input", f"attempt index out of range: {attempt_index}")


def _check_block(block_ms: int) -> None:
    if not 0 <= block_ms <= limits.STREAM_TAIL_BLOCK_MAX_MS:
        raise ValidationError("invalid_input", f"block_ms must be 0.."
                              f"{limits.STREAM_TAIL_BLOCK_MAX_MS}, got {block_ms}")
