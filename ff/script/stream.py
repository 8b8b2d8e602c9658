"""Typed wrappers for the stream functions (lua/stream.lua): append a frame, read a page
of frames, read the summary document."""

from __future__ import annotations

import msgspec

from ff.core.errors import FFError
from ff.core.keys import ExecKeys
from ff.core.records import AppendResult, StreamFrame, StreamFrames, StreamSummary
from ff.script.library import FunctionLibrary, text


class AppendFrame(msgspec.Struct, frozen=True, kw_only=True):
    """One frame as the lease holder sends it (see ff_append_frame's header)."""

    payload: bytes
    frame_type: str = "log"
    mode: str = "durable"
    encoding: str = "utf8"
    correlation_id: str = ""
    source: str = "worker"
    ttl_ms: int = 0


class Fence(msgspec.Struct, frozen=True):
    """The lease triple and attempt index an append is fenced by."""

    lease_id: str
    lease_epoch: str
    attempt_id: str
    attempt_index: int


class _Page(msgspec.Struct, frozen=True):
    closed_at: str
    closed_reason: str
    attempt_ended_at: str
    attempt_state: str
    entries: list[object]


class _Summary(msgspec.Struct, frozen=True):
    document: str
    version: int
    patch_kind: str
    last_updated_ms: int
    first_applied_ms: int


def append_call(eid: str, fence: Fence, frame: AppendFrame
                ) -> tuple[tuple[str, ...], tuple[object, ...]]:
    """KEYS and ARGV of one ff_append_frame (pipelined appends build many)."""
    keys = ExecKeys(eid)
    idx = fence.attempt_index
    return (keys.core, keys.stream(idx), keys.stream_meta(idx), keys.attempt_summary(idx)), (
        eid, idx, fence.lease_id, fence.lease_epoch, fence.attempt_id, frame.frame_type,
        frame.payload, frame.encoding, frame.correlation_id, frame.source, frame.mode,
        frame.ttl_ms or "",
    )


async def append_frame(lib: FunctionLibrary, eid: str, fence: Fence,
                       frame: AppendFrame) -> AppendResult:
    keys, args = append_call(eid, fence, frame)
    reply = await lib.call("ff_append_frame", keys, args)
    return reply.into(AppendResult)


async def append_frames(lib: FunctionLibrary, eid: str, fence: Fence,
                        frames: list[AppendFrame]) -> list[AppendResult | FFError]:
    """Several appends in one round trip, in order; each answer is where the frame
    landed or the library's rejection of it. Transport failures raise."""
    answers = await lib.call_many("ff_append_frame",
                                  [append_call(eid, fence, frame) for frame in frames])
    return [a if isinstance(a, FFError) else a.into(AppendResult) for a in answers]


# Why an attempt ended, as a stream close reason (for attempts that never opened a stream).
_REASON_BY_ATTEMPT_STATE = {
    "ended_success": "attempt_success", "ended_failure": "attempt_failure",
    "ended_cancelled": "attempt_cancelled", "interrupted_reclaimed": "reclaimed",
}


def closed_markers(meta_closed_at: str, meta_reason: str, attempt_ended_at: str,
                   attempt_state: str) -> tuple[int | None, str | None]:
    """closed_at / closed_reason: the stream meta's, else (an attempt that never wrote a
    frame has no meta) the attempt's end."""
    if meta_closed_at:
        return int(meta_closed_at), meta_reason or None
    if attempt_ended_at:
        return int(attempt_ended_at), _REASON_BY_ATTEMPT_STATE.get(attempt_state, attempt_state)
    return None, None


def parse_frames(entries: list[object]) -> list[StreamFrame]:
    """XRANGE / XREAD entries (`[id, [field, value, ...]]`) as frames with sorted fields."""
    frames = []
    for entry in entries:
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        flat = entry[1] if isinstance(entry[1], list) else []
        pairs = sorted((text(flat[i]), text(flat[i + 1])) for i in range(0, len(flat) - 1, 2))
        frames.append(StreamFrame(text(entry[0]), dict(pairs)))
    return frames


async def read_attempt_stream(lib: FunctionLibrary, eid: str, attempt_index: int, *,
                              from_id: str, to_id: str, count: int) -> StreamFrames:
    keys = ExecKeys(eid)
    reply = await lib.call("ff_read_attempt_stream", (
        keys.core, keys.stream(attempt_index), keys.stream_meta(attempt_index),
    keys.attempt(attempt_index)), (eid, attempt_index, from_id, to_id, count))
    page = reply.into(_Page)
    frames = parse_frames(page.entries)
    closed_at, reason = closed_markers(page.closed_at, page.closed_reason,
                                       page.attempt_ended_at, page.attempt_state)
    return StreamFrames(frames, len(frames), closed_at, reason)


async def read_summary(lib: FunctionLibrary, eid: str, attempt_index: int) -> StreamSummary:
    keys = ExecKeys(eid)
    reply = await lib.call("ff_read_summary", (keys.core, keys.attempt_summary(attempt_index)),
                           (eid, attempt_index))
    summary = reply.into(_Summary)
    if not summary.document:
        return StreamSummary(None, 0)
    return StreamSummary(msgspec.json.decode(summary.document), summary.version,
                         summary.patch_kind, summary.last_updated_ms, summary.first_applied_ms)
