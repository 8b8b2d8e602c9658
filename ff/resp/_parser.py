"""Incremental RESP3 reply parsing: hiredis on the fast path, a Python parser as fallback.

hiredis 3.5 gets three RESP3 frame types wrong: blob errors (`!`) raise a protocol
error, big numbers (`(`) come back as bytes, and attributes (`|`) come back as a reply
of their own, which would shift every later reply onto the wrong caller. All three only
ever start right after a CRLF (or at the start of the stream), so each received chunk is
scanned for `CRLF` followed by one of those type bytes. Chunks without one go to hiredis.
The first chunk with one switches to `_SlowParser`, re-parsing whatever hiredis held of
an unfinished reply, and hiredis takes over again once a reply ends exactly where the
received bytes end. A match inside a bulk payload is a false alarm that only costs the
slower parser for a while. The bytes kept for that re-parse are capped: a stream whose
chunks keep ending mid-reply also moves to the slow parser rather than grow them.

Decoding: simple/bulk strings -> bytes, integers and big numbers -> int, doubles ->
float, booleans -> bool, null -> None, arrays and *sets* -> list (set members may be
unhashable, and hiredis decodes them to lists too), maps -> dict, verbatim strings ->
bytes without the `txt:` prefix, attributes -> dropped, push frames ->
`hiredis.PushNotification` (a list), error replies -> `ResponseError` *values*.
"""

from __future__ import annotations

import re
from typing import Any

import hiredis

from ff.resp import errors

# Returned by `gets()` when no complete reply is buffered. A private object, because
# hiredis' default (False) cannot be told apart from a RESP3 boolean false.
NEED_DATA: Any = object()

PushNotification = hiredis.PushNotification

_SPECIAL = re.compile(rb"\r\n[!(|]")
_REPLAY_LIMIT = 1 << 20
_AGGREGATES = frozenset(b"*~%|>")
_BULKS = frozenset(b"$!=")


class ReplyReader:
    """Feed it received bytes, then call `gets()` until it returns `NEED_DATA`."""

    __slots__ = ("_chunks", "_hiredis", "_retained", "_returned", "_slow", "_tail")

    def __init__(self) -> None:
        self._hiredis = self._new_hiredis()
        # Chunks fed to hiredis since it was last known to sit on a reply boundary, and
        # how many replies it returned from them: enough to rebuild its unfinished reply.
        self._chunks: list[bytes] = []
        self._retained = 0
        self._returned = 0
        self._slow: _SlowParser | None = None
        self._tail = b"\r\n"  # last two bytes seen; the stream starts "after a CRLF"

    @staticmethod
    def _new_hiredis() -> hiredis.Reader:
        return hiredis.Reader(
            protocolError=errors.ProtocolError,
            replyError=errors.response_error,
            notEnoughData=NEED_DATA,
        )

    def feed(self, data: bytes) -> None:
        """Buffer received bytes. Raises `errors.ProtocolError` for undecodable input."""
        if self._slow is not None:
            self._slow.feed(data)
        elif (
            _SPECIAL.search(data) is None
            and _SPECIAL.search(self._tail + data[:2]) is None
            and self._retained < _REPLAY_LIMIT
        ):
            self._hiredis.feed(data)
            self._chunks.append(data)
            self._retained += len(data)
        else:
            try:
                self._slow = _SlowParser(b"".join(self._chunks) + data, skip=self._returned)
            except (ValueError, TypeError) as exc:
                raise errors.ProtocolError(f"undecodable reply: {exc}") from exc
            self._hiredis = self._new_hiredis()
            self._forget()
        self._tail = (self._tail + data[-2:])[-2:]  # an empty chunk keeps the tail

    def _forget(self) -> None:
        self._chunks.clear()
        self._retained = 0
        self._returned = 0

    def gets(self) -> Any:
        """The next complete reply, or `NEED_DATA`. Raises `errors.ProtocolError`."""
        try:
            if self._slow is not None:
                reply = self._slow.gets()
                if self._slow.drained():
                    self._slow = None
                return reply
            reply = self._hiredis.gets()
        except (ValueError, TypeError) as exc:  # bad lengths, a map key that cannot be hashed
            raise errors.ProtocolError(f"undecodable reply: {exc}") from exc
        if reply is not NEED_DATA:
            if self._hiredis.has_data():
                self._returned += 1
            else:
                self._forget()
        return reply


class _Aggregate:
    """An array/set/map/push/attribute whose elements are still being parsed."""

    __slots__ = ("items", "kind", "remaining")

    def __init__(self, kind: int, remaining: int) -> None:
        self.kind = kind
        self.remaining = remaining
        self.items: list[Any] = []

    def build(self) -> Any:
        items = self.items
        if self.kind in b"%|":
            return dict(zip(items[::2], items[1::2], strict=True))
        if self.kind == ord(">"):
            return PushNotification(items)
        return items


class _SlowParser:
    """Resumable pure-Python RESP3 parser covering every frame type.

    Partly received aggregates stay on `_stack` between calls, so a large reply arriving
    in many chunks is parsed in linear time.
    """

    __slots__ = ("_buf", "_pos", "_stack")

    def __init__(self, data: bytes, *, skip: int) -> None:
        self._buf = bytearray(data)
        self._pos = 0
        self._stack: list[_Aggregate] = []
        for _ in range(skip):  # replies hiredis already returned from these bytes
            if self.gets() is NEED_DATA:
                raise ValueError("replay ended before the replies already returned")

    def feed(self, data: bytes) -> None:
        if self._pos > 65536:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def drained(self) -> bool:
        """At a reply boundary with nothing buffered: hiredis can take over again."""
        return not self._stack and self._pos == len(self._buf)

    def gets(self) -> Any:
        buf, stack = self._buf, self._stack
        while True:
            pos = self._pos
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return NEED_DATA
            kind = buf[pos]
            line = bytes(buf[pos + 1 : eol])
            if kind in _BULKS:
                size = int(line)
                if size < 0:
                    value, self._pos = None, eol + 2
                else:
                    end = eol + 2 + size
                    if len(buf) < end + 2:
                        return NEED_DATA
                    value, self._pos = self._bulk(kind, bytes(buf[eol + 2 : end])), end + 2
            elif kind in _AGGREGATES:
                self._pos = eol + 2
                count = int(line)
                if count < 0:
                    value = None
                else:
                    stack.append(_Aggregate(kind, count * 2 if kind in b"%|" else count))
                    if count:
                        continue
                    value = stack.pop().build()
                    if kind == ord("|"):
                        continue
            else:
                value, self._pos = _simple(kind, line), eol + 2
            while stack:
                top = stack[-1]
                top.items.append(value)
                top.remaining -= 1
                if top.remaining:
                    break
                stack.pop()
                if top.kind == ord("|"):  # an attribute annotates the next value: drop it
                    break
                value = top.build()
            else:
                return value

    @staticmethod
    def _bulk(kind: int, payload: bytes) -> Any:
        if kind == ord("$"):
            return payload
        if kind == ord("="):
            return payload[4:]  # "txt:" / "mkd:"
        return errors.response_error(payload.decode("utf-8", "replace"))


def _simple(kind: int, line: bytes) -> Any:
    if kind == ord("+"):
        return line
    if kind == ord(":") or kind == ord("("):
        return int(line)
    if kind == ord("-"):
        return errors.response_error(line.decode("utf-8", "replace"))
    if kind == ord(","):
        return float(line)
    if kind == ord("#"):
        return line == b"t"
    if kind == ord("_"):
        return None
    raise errors.ProtocolError(f"unknown RESP type byte {bytes([kind])!r}")
