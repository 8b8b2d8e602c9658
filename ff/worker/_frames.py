"""`FrameBuffer`: a task's outgoing stream frames, sent in order in pipelined batches.

What lives here: the bounded queue between a handler's `append_frame` / `update_summary`
and Valkey, and the sender that drains it. A handler waits only when the queue is full
(durable and summary frames wait for room; best_effort frames are dropped and counted), so
a slow Valkey slows a chatty handler down instead of growing memory without bound. What
must not live here: the lease fence's meaning (`_task.py` decides what a rejection does).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import trio

from ff.core.errors import BackendError, FFError
from ff.resp import errors as resp_errors
from ff.script import stream as stream_fns
from ff.script.library import FunctionLibrary
from ff.transient import is_transient

log = logging.getLogger("ff.worker")

MAX_QUEUED_FRAMES = 1_000
MAX_QUEUED_BYTES = 8 * 1024 * 1024
BATCH_FRAMES = 256
RETRY_BACKOFF_S = (0.05, 1.0)


class FrameBuffer:
    """Frames queued by one task; `run()` (under the task's lease scope) sends them.

    `on_rejected(error)` is called for every frame the library refused; the sender stops
    for good after a rejection of the lease itself (`lease_codes`).
    """

    def __init__(self, library: FunctionLibrary, execution_id: str, fence: stream_fns.Fence,
                 *, on_rejected: Callable[[FFError], None], lease_codes: frozenset[str]) -> None:
        self._library = library
        self._eid = execution_id
        self._fence = fence
        self._on_rejected = on_rejected
        self._lease_codes = lease_codes
        self._queue: deque[stream_fns.AppendFrame] = deque()
        self._bytes = 0
        self._in_flight = 0
        self._changed = trio.Event()  # set whenever the queue or the sender's state moves
        self.stopped = False
        self.sent = 0
        self.dropped = 0

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _full(self, frame: stream_fns.AppendFrame) -> bool:
        return bool(self._queue) and (len(self._queue) >= MAX_QUEUED_FRAMES
                                      or self._bytes + len(frame.payload) > MAX_QUEUED_BYTES)

    async def put(self, frame: stream_fns.AppendFrame) -> None:
        """Queue `frame`; waits for room when full, except best_effort frames, dropped."""
        while self._full(frame):
            if frame.mode == "best_effort":
                self.dropped += 1
                return
            if self.stopped:
                return
            await self._changed.wait()
        if self.stopped:
            return
        self._queue.append(frame)
        self._bytes += len(frame.payload)
        self._notify()

    async def flush(self) -> None:
        """Waits until every frame queued so far was sent (or the sender stopped)."""
        while (self._queue or self._in_flight) and not self.stopped:
            await self._changed.wait()

    def stop(self) -> None:
        """No more frames: the sender ends once idle; queued frames are dropped."""
        self.stopped = True
        self._notify()

    async def run(self) -> None:
        """Sends batches until stopped; transport failures are retried with backoff (a
        batch whose reply was lost may then land twice: frames are at least once)."""
        try:
            while not self.stopped:
                if not self._queue:
                    await self._changed.wait()
                    continue
                batch = [self._queue.popleft()
                         for _ in range(min(BATCH_FRAMES, len(self._queue)))]
                self._in_flight = len(batch)
                self._bytes -= sum(len(f.payload) for f in batch)
                self._notify()
                answers = await self._send(batch)
                self._in_flight = 0
                self._record(answers)
                self._notify()
        finally:
            self.stopped = True
            self._in_flight = 0
            self._notify()

    async def _send(self, batch: list[stream_fns.AppendFrame]
                    ) -> list[stream_fns.AppendResult | FFError]:
        pause, longest = RETRY_BACKOFF_S
        while True:
            try:
                return await stream_fns.append_frames(self._library, self._eid, self._fence,
                                                       batch)
            except (FFError, resp_errors.RespError) as exc:
                if not is_transient(exc):
                    error = exc if isinstance(exc, FFError) else BackendError("backend", repr(exc))
                    return [error] * len(batch)
                log.warning("frame append failed, retrying",
                            extra={"execution_id": self._eid, "error": repr(exc)})
                await trio.sleep(pause)
                pause = min(pause * 2, longest)

    def _record(self, answers: list[stream_fns.AppendResult | FFError]) -> None:
        for answer in answers:
            if not isinstance(answer, FFError):
                self.sent += 1
                continue
            self._on_rejected(answer)
            if answer.code in self._lease_codes:
                self.stop()
                return
