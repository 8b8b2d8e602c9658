"""Pub/sub on a private connection, read directly by the consuming task.

In RESP3 every subscription event is a push frame. The subscription owns its stream and
reads it only when the consumer asks for the next message: no background task, and a
slow consumer pushes back on the server through TCP instead of buffering in memory
(the server's pubsub output-buffer limit then decides).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import trio

from ff.resp import errors
from ff.resp._commands import encode
from ff.resp._parser import NEED_DATA, PushNotification, ReplyReader
from ff.resp._transport import RECEIVE_SIZE


class Subscription:
    """`async for channel, message in sub`: both bytes. Ends only by error or exit."""

    def __init__(self, stream: trio.abc.Stream, reader: ReplyReader, address: str) -> None:
        self._stream = stream
        self._reader = reader
        self._address = address
        self._early: deque[tuple[bytes, bytes]] = deque()  # arrived while subscribing

    async def subscribe(self, channels: Sequence[str | bytes], timeout: float) -> None:
        """SUBSCRIBE and wait until the server confirmed every channel."""
        await self._send(encode(("SUBSCRIBE", *channels)))
        waiting = {c.encode() if isinstance(c, str) else c for c in channels}
        with trio.fail_after(timeout):
            while waiting:
                frame = await self._next_frame()
                if frame[0] == b"subscribe":
                    waiting.discard(frame[1])
                elif frame[0] == b"message":
                    self._early.append((frame[1], frame[2]))

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[bytes, bytes]:
        if self._early:
            return self._early.popleft()
        while True:
            frame = await self._next_frame()
            if frame[0] == b"message":
                return frame[1], frame[2]

    async def _next_frame(self) -> PushNotification:
        """The next push frame; an error reply (e.g. NOPERM) is raised."""
        while True:
            while (frame := self._reader.gets()) is not NEED_DATA:
                if isinstance(frame, errors.ResponseError):
                    raise frame
                if type(frame) is PushNotification:
                    return frame
            try:
                data = await self._stream.receive_some(RECEIVE_SIZE)
            except (OSError, trio.BrokenResourceError) as exc:
                raise errors.ConnectionError(f"subscription to {self._address} lost") from exc
            if not data:
                raise errors.ConnectionError(f"{self._address} closed the subscription")
            self._reader.feed(bytes(data))

    async def _send(self, frames: bytes) -> None:
        try:
            await self._stream.send_all(frames)
        except (OSError, trio.BrokenResourceError) as exc:
            raise errors.ConnectionError(f"subscription to {self._address} lost") from exc
