"""`ClaimedTask`: one leased attempt, its renewal loop and its terminal calls.

What lives here: the lease-holder side of an attempt. The worker renews the leases of all
its tasks from one loop (`renew_all`: one pipelined round trip per tick, every TTL/3)
until a terminal call (complete, fail, cancel, delay) reaches the server; a renewal
answered with a lease error, or one that cannot get through before the lease would have
expired, marks that task's lease lost, which cancels every scope registered with its
`lease_scope()` and makes every later call raise `LeaseLostError`. What must not live
here: claiming, handler dispatch and worker registration (`_worker.py`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import msgspec
import trio

from ff.core import limits
from ff.core.budget_records import ReportUsageResult
from ff.core.conditions import TIMEOUT_BEHAVIORS, plan_condition
from ff.core.errors import ExecutionNotActiveError, FFError, ValidationError
from ff.core.ids import new_uuid
from ff.core.records import LeaseHandle, PendingWaitpoint, ResumeSignal, SuspendOutcome
from ff.resp import errors as resp_errors
from ff.script import execution as execution_fns
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns
from ff.script import stream as stream_fns
from ff.script import waitpoint as waitpoint_fns
from ff.script.library import FunctionLibrary
from ff.transient import is_transient
from ff.worker._frames import FrameBuffer
from ff.worker._spend import TaskSpend

log = logging.getLogger("ff.worker")

T = TypeVar("T")

# A failed renewal is retried sooner than the next regular tick: a blip (a reconnect)
# must not eat the margin a TTL/3 schedule leaves.
RENEW_RETRY_S = 0.25
TERMINAL_BACKOFF_S = (0.05, 1.0)  # first and longest pause between terminal-call retries


class LeaseLostError(Exception):
    """This worker no longer holds the lease: nothing it writes for the attempt counts.

    `code` is the server's reason (lease_expired, lease_revoked, stale_lease,
    execution_not_active, execution_not_found) or `lease_unrenewable` when the server
    could not be reached before the lease would have run out.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


def encode_result(value: Any) -> bytes:
    """A handler's value as stored: bytes as they are, str as UTF-8, None as no result,
    anything else as JSON."""
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return msgspec.json.encode(value)


class ClaimedTask:
    """An attempt this worker holds a lease on. Made by `Worker.claim_next()` only.

    Read-only facts: `execution_id`, `attempt_index`, `attempt_id`, `attempt_type`,
    `lease_id`, `lease_epoch`, `kind`, `payload` (bytes), `payload_encoding`, `tags`,
    `lane_id`, `namespace`, `priority`, and `resume_signals` (the signals that satisfied
    the suspension this attempt resumes from; empty unless `attempt_type` is `resumed`, or
    a reclaim of a resumed attempt). End it with exactly one of `complete`, `fail`,
    `cancel`, `delay` or `suspend`.
    """

    def __init__(
        self,
        library: FunctionLibrary,
        lease: LeaseHandle,
        *,
        lease_ttl_ms: int,
        claimed_at: float,
        on_release: Callable[[ClaimedTask], None],
        spawn: Callable[[Callable[[], Awaitable[None]]], None] | None = None,
        spend: TaskSpend | None = None,
    ) -> None:
        self._library = library
        self.lease = lease
        self.execution_id: str = lease.execution_id
        self.attempt_index: int = lease.attempt_index
        self.attempt_id: str = lease.attempt_id
        self.attempt_type: str = lease.attempt_type
        self.lease_id: str = lease.lease_id
        self.lease_epoch: str = lease.lease_epoch
        self.kind: str = lease.execution_kind
        self.payload: bytes = lease.payload
        self.payload_encoding: str = lease.payload_encoding
        self.tags: dict[str, str] = lease.tags
        self.lane_id: str = lease.lane_id
        self.namespace: str = lease.namespace
        self.priority: int = lease.priority
        self.resume_signals: list[ResumeSignal] = lease.resume_signals
        self._ttl_ms = lease_ttl_ms
        # Local estimate of the lease's end, from the monotonic clock at the time the
        # claim was *sent*, so it can only be early, never late.
        self._expires_local = claimed_at + lease_ttl_ms / 1000
        self._renewed_at = claimed_at
        self._on_release = on_release
        self._released = False
        self._scopes: set[trio.CancelScope] = set()
        self._terminal_in_flight = False
        self._spawn = spawn
        self._spend = spend
        self._frames: FrameBuffer | None = None
        self._frame_errors: list[FFError] = []
        self.ended = False
        self.outcome: str | None = None
        self.lease_lost: LeaseLostError | None = None

    def __repr__(self) -> str:
        return (f"<ClaimedTask {self.execution_id} kind={self.kind!r} "
                f"attempt={self.attempt_index} epoch={self.lease_epoch}>")

    @contextmanager
    def lease_scope(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that is cancelled as soon as the lease is known to be lost, so
        work done under a lease never outlives it."""
        scope = trio.CancelScope()
        if self.lease_lost is not None:
            scope.cancel()
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    # -- terminal calls -------------------------------------------------------------

    async def complete(self, result: Any = None) -> None:
        """Ends the execution successfully with `result` as its result: bytes as they
        are, str as UTF-8, None as no result, anything else as JSON (TypeError if it
        cannot be encoded; the task is then untouched)."""
        data = encode_result(result)
        await self._terminal("complete", lambda: execution_fns.complete_execution(
            self._library, self.execution_id, result=data, **self._fence()))

    async def fail(self, reason: str, category: str, retryable: bool = True) -> str:
        """Fails the attempt. The execution's retry policy decides what happens next
        (`retryable=False` skips it). Returns `retry_scheduled` or `terminal_failed`."""
        failed = await self._terminal("fail", lambda: execution_fns.fail_execution(
            self._library, self.execution_id, reason=reason, category=category,
            retryable=retryable, source="worker", **self._fence()))
        return failed.outcome

    async def cancel(self, reason: str) -> None:
        """Ends the execution as cancelled (fenced by this lease)."""
        await self._terminal("cancel", lambda: execution_fns.cancel_execution(
            self._library, self.execution_id, reason=reason, source="worker",
            lease_id=self.lease_id, lease_epoch=self.lease_epoch))

    async def delay(self, until_ms: int) -> None:
        """Gives the attempt back until `until_ms` (server epoch ms); the next claim
        resumes the same attempt."""
        await self._terminal("delay", lambda: execution_fns.delay_execution(
            self._library, self.execution_id, delay_until=until_ms, source="worker",
            **self._fence()), landed=(until_ms, "runnable"))

    async def suspend(
        self,
        condition: dict[str, Any] | None = None,
        *,
        timeout_ms: int | None = None,
        timeout_behavior: str = "fail",
        pending: PendingWaitpoint | None = None,
        reason_code: str = "waiting_for_signal",
    ) -> SuspendOutcome:
        """Suspends the attempt until `condition` is met (default: any signal), ending
        this handler's hold on the lease. Returns the waitpoint id, key and token (hand
        the token to whoever must signal) and, for a composite naming several waitpoint
        keys, `additional_waitpoints`. After `timeout_ms` the suspension times out with
        `timeout_behavior`: fail, cancel, expire, auto_resume (resumes with a
        `__timeout__` signal) or escalate (stays suspended for an operator). `pending=`
        suspends on a waitpoint made by `create_pending_waitpoint`; signals it buffered
        count, and when they already satisfy the condition `state` is `resumed`. The
        execution comes back through the claim path with `attempt_type == "resumed"`.
        Malformed conditions raise `ValidationError` and leave the task untouched."""
        condition_json, keys = plan_condition(condition if condition is not None else {})
        if timeout_behavior not in TIMEOUT_BEHAVIORS:
            raise ValidationError("invalid_input",
                                  f"timeout_behavior: one of {', '.join(TIMEOUT_BEHAVIORS)}")
        if timeout_ms is not None and timeout_ms <= 0:
            raise ValidationError("invalid_input", "timeout_ms must be positive")
        suspension_id = new_uuid()
        additional: list[tuple[str, str]] = []
        if pending is not None:
            if keys and keys != [pending.waitpoint_key]:
                raise ValidationError("invalid_resume_condition",
                                      "a pending waitpoint's condition names only its key")
            wp_id, key = pending.waitpoint_id, pending.waitpoint_key
        else:
            wp_id = new_uuid()
            key = keys[0] if keys else f"wpk:{wp_id}"
            additional = [(new_uuid(), k) for k in keys[1:]]
        outcome: SuspendOutcome = await self._terminal(
            "suspend", lambda: waitpoint_fns.suspend_execution(
                self._library, self.execution_id, suspension_id=suspension_id,
                waitpoint_id=wp_id, waitpoint_key=key, reason_code=reason_code,
                requested_by="worker", timeout_ms=timeout_ms,
                timeout_behavior=timeout_behavior, condition_json=condition_json,
                use_pending=pending is not None, additional=additional, **self._fence()))
        return outcome

    async def create_pending_waitpoint(self, waitpoint_key: str | None = None,
                                       expires_in_ms: int = 3_600_000) -> PendingWaitpoint:
        """A waitpoint (and its token) minted before suspending, so a callback can be
        registered first; signals sent to it before the suspend are buffered. Not a
        terminal call. Unused, it closes after `expires_in_ms`."""
        self._check_usable()
        wp_id = new_uuid()
        try:
            return await waitpoint_fns.create_pending_waitpoint(
                self._library, self.execution_id, waitpoint_id=wp_id,
                waitpoint_key=waitpoint_key or f"wpk:{wp_id}", expires_in_ms=expires_in_ms,
                **self._fence())
        except FFError as exc:
            if exc.code in LOST_CODES:
                raise self._lose(LeaseLostError(exc.code, exc.detail)) from exc
            raise

    async def report_usage(self, usage: dict[str, int], budget_id: str | None = None,
                           dedup_key: str | None = None) -> ReportUsageResult:
        """Adds `usage` (dimension -> amount) to `budget_id`, or to every budget the
        execution carries. The outcome is `Ok`, `SoftBreach`, `HardBreach` (nothing was
        added: stop and `fail(..., category="budget_exceeded")`) or `AlreadyApplied`; with
        several budgets the most severe. The dedup key defaults to one made of the attempt
        and this report's number within it, so a retry never counts twice."""
        self._check_usable()
        if self._spend is None:
            raise RuntimeError("this task was not claimed through a Worker")
        return await self._spend.report(usage, budget_id, dedup_key)

    async def update_progress(self, pct: int | None = None, message: str = "") -> None:
        """Records progress (0-100) and a message on the execution; not a terminal call."""
        self._check_usable()
        try:
            await scheduling_fns.update_progress(
                self._library, self.execution_id, lease_id=self.lease_id,
                lease_epoch=self.lease_epoch, progress_pct=pct, message=message)
        except FFError as exc:
            if exc.code in LOST_CODES:
                raise self._lose(LeaseLostError(exc.code, exc.detail)) from exc
            raise

    # -- output stream --------------------------------------------------------------

    async def append_frame(self, payload: Any, frame_type: str = "log", mode: str = "durable",
                           *, correlation_id: str = "", ttl_ms: int = 0) -> None:
        """Queues one frame for this attempt's output stream: bytes as they are, str as
        UTF-8, anything else as JSON. Returns once queued (waits only while the bounded
        buffer is full; a best_effort frame is then dropped); frames are sent in order in
        the background, and every terminal call sends what is queued first. `flush()`
        waits for delivery and reports rejections. A frame that can never be accepted
        (too large, bad mode or type) raises `ValidationError` here and is not queued."""
        self._check_usable()
        data, encoding = _frame_bytes(payload)
        frame = stream_fns.AppendFrame(payload=data, frame_type=frame_type, mode=mode,
                                       encoding=encoding, correlation_id=correlation_id,
                                       ttl_ms=ttl_ms)
        _check_frame(frame)
        await self._frame_buffer().put(frame)

    async def update_summary(self, patch: Any) -> None:
        """Queues a JSON merge patch (RFC 7396; a dict, or its JSON text) for the attempt's
        summary document: null deletes a key, objects merge, arrays and scalars replace."""
        data = patch if isinstance(patch, bytes) else (
            patch.encode() if isinstance(patch, str) else msgspec.json.encode(patch))
        try:
            decoded = msgspec.json.decode(data)
        except msgspec.DecodeError:
            raise ValidationError("invalid_input", "patch payload is not valid JSON") from None
        if not isinstance(decoded, dict):
            raise ValidationError("invalid_input", "patch must be a JSON object")
        await self.append_frame(data, frame_type="summary", mode="summary")

    async def flush(self) -> None:
        """Waits until every queued frame reached Valkey; raises the first frame the
        library refused since the last flush (e.g. `summary_too_large`, `stream_closed`)."""
        if self._frames is not None:
            await self._frames.flush()
        if self.lease_lost is not None:
            raise self.lease_lost
        if self._frame_errors:
            first = self._frame_errors[0]
            self._frame_errors.clear()
            raise first

    @property
    def frames_dropped(self) -> int:
        """best_effort frames dropped because the buffer was full."""
        return self._frames.dropped if self._frames is not None else 0

    def _frame_buffer(self) -> FrameBuffer:
        if self._frames is None:
            if self._spawn is None:
                raise RuntimeError("append_frame needs a task claimed by a Worker")
            fence = stream_fns.Fence(self.lease_id, self.lease_epoch, self.attempt_id,
                                     self.attempt_index)
            self._frames = FrameBuffer(self._library, self.execution_id, fence,
                                       on_rejected=self._frame_rejected, lease_codes=LOST_CODES)
            self._spawn(self._send_frames)
        return self._frames

    async def _send_frames(self) -> None:
        assert self._frames is not None
        with self.lease_scope():
            await self._frames.run()

    def _frame_rejected(self, error: FFError) -> None:
        if error.code in LOST_CODES:
            self._lose(LeaseLostError(error.code, error.detail))
            return
        log.warning("frame rejected", extra={"execution_id": self.execution_id,
                                             "error": str(error)})
        if len(self._frame_errors) < 100:
            self._frame_errors.append(error)

    def _fence(self) -> dict[str, str]:
        return {"lease_id": self.lease_id, "lease_epoch": self.lease_epoch,
                "attempt_id": self.attempt_id}

    def _check_usable(self) -> None:
        if self.lease_lost is not None:
            raise self.lease_lost
        if self.ended:
            raise RuntimeError(f"{self!r} already ended with {self.outcome}")
        if self._terminal_in_flight:
            raise RuntimeError(f"{self!r} has a terminal call in flight")

    async def _terminal(self, name: str, call: Callable[[], Awaitable[T]],
                        landed: tuple[T, str] | None = None) -> T:
        """Runs a terminal call until it reaches the server.

        Transport failures are retried with bounded backoff while the lease is alive
        (renewal keeps running meanwhile); the library answers a repeated call that had
        already landed with ALREADY_SATISFIED. Success or a lease error ends the task; any
        other rejection (bad input) changed nothing, so the lease stays held and renewed
        and the caller may end the task another way. `landed` is (the answer, the phase
        the call leads to) for a call whose repeat the library cannot recognise itself.
        """
        self._check_usable()
        self._terminal_in_flight = True
        if self._frames is not None:
            await self._frames.flush()  # frames first: the terminal call closes the stream
            if self.lease_lost is not None:
                self._terminal_in_flight = False
                raise self.lease_lost
        pause, longest = TERMINAL_BACKOFF_S
        maybe_landed = False
        try:
            while True:
                try:
                    reply = self._end(name, await call())
                    if self._spend is not None:
                        await self._spend.release()
                    return reply
                except (FFError, resp_errors.RespError) as exc:
                    if is_transient(exc):
                        maybe_landed = True
                        pause = await self._before_retry(exc, pause, longest)
                        continue
                    if maybe_landed and landed and self._own_earlier_call(exc, landed[1]):
                        return self._end(name, landed[0])
                    if isinstance(exc, FFError) and exc.code in LOST_CODES:
                        self._end("lease_lost", None)
                        raise self._lose(LeaseLostError(exc.code, exc.detail)) from exc
                    raise
        finally:
            self._terminal_in_flight = False

    async def _before_retry(self, exc: BaseException, pause: float, longest: float) -> float:
        if self.lease_lost is not None or trio.current_time() + pause >= self._expires_local:
            self._end("abandoned", None)
            raise self._lose(LeaseLostError("lease_unrenewable", repr(exc))) from exc
        log.warning("terminal call failed, retrying",
                    extra={"execution_id": self.execution_id, "error": repr(exc)})
        await trio.sleep(pause)
        return min(pause * 2, longest)

    def _own_earlier_call(self, exc: BaseException, landed_phase: str) -> bool:
        """After a lost reply, `execution_not_active` naming our own epoch and attempt in
        the phase our call leads to means that call landed (delay has no replay reply)."""
        return (isinstance(exc, ExecutionNotActiveError)
                and (exc.lease_epoch, exc.attempt_id, exc.lifecycle_phase)
                == (self.lease_epoch, self.attempt_id, landed_phase))

    def _end(self, outcome: str, reply: T) -> T:
        """A terminal call reached the server: stop renewing and give the slot back."""
        self.ended = True
        self.outcome = outcome
        if self._frames is not None:
            self._frames.stop()
        self._release()
        return reply

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._on_release(self)

    def _lose(self, error: LeaseLostError) -> LeaseLostError:
        """Record the loss once, cancel the work running under the lease, stop renewing."""
        if self.lease_lost is None:
            self.lease_lost = error
            log.warning("lease lost", extra={"execution_id": self.execution_id,
                                             "reason": error.code})
            for scope in list(self._scopes):
                scope.cancel()
            self._release()
        return self.lease_lost

    # -- renewal (driven by `renew_all`) ---------------------------------------------

    @property
    def renewing(self) -> bool:
        return not self.ended and self.lease_lost is None

    def _renewal(self) -> lease_fns.Renewal:
        return lease_fns.Renewal(self.execution_id, self.attempt_index, self.attempt_id,
                                 self.lease_id, self.lease_epoch, self._ttl_ms)

    def _renewed(self, sent_at: float) -> None:
        self._renewed_at = sent_at
        self._expires_local = sent_at + self._ttl_ms / 1000

    def _renewal_failed(self, exc: BaseException) -> bool:
        """Marks the lease lost when the failure says so; True when it is worth retrying
        before the next regular tick."""
        if not self.renewing:
            return False
        if not is_transient(exc):
            if not self._terminal_in_flight:  # else the terminal call's answer tells
                code = getattr(exc, "code", "lease_unrenewable")
                self._lose(LeaseLostError(code, getattr(exc, "detail", "")))
            return False
        if trio.current_time() >= self._expires_local:
            self._lose(LeaseLostError("lease_unrenewable", repr(exc)))
            return False
        log.warning("lease renewal failed, retrying",
                    extra={"execution_id": self.execution_id, "error": repr(exc)})
        return True


async def renew_all(library: FunctionLibrary, tasks: Callable[[], Iterable[ClaimedTask]],
                    lease_ttl_ms: int) -> None:
    """Renews every held lease every TTL/3, all in one pipelined round trip per tick; a
    task claimed less than half a tick ago waits for the next one. Runs until cancelled."""
    interval = max(lease_ttl_ms / 3, 1) / 1000
    wait = interval
    while True:
        await trio.sleep(wait)
        wait = interval
        sent_at = trio.current_time()
        due = [t for t in tasks() if t.renewing and sent_at - t._renewed_at >= interval / 2]
        if not due:
            continue
        answers: list[int | BaseException]
        try:
            # Bounded by the earliest local expiry: no lease outlives its renewal's wait.
            with trio.fail_after(max(min(t._expires_local for t in due) - sent_at, 0.001)):
                answers = list(await lease_fns.renew_leases(library, [t._renewal() for t in due]))
        except (resp_errors.RespError, trio.TooSlowError, OSError) as exc:
            answers = [exc] * len(due)
        for task, answer in zip(due, answers, strict=True):
            if isinstance(answer, BaseException):
                if task._renewal_failed(answer):
                    wait = min(interval, RENEW_RETRY_S)
            else:
                task._renewed(sent_at)


STREAM_MODES = frozenset({"durable", "summary", "best_effort"})


def _frame_bytes(payload: Any) -> tuple[bytes, str]:
    """A frame payload and its encoding: bytes as they are, str as UTF-8, else JSON."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload), "utf8"
    if isinstance(payload, str):
        return payload.encode(), "utf8"
    return msgspec.json.encode(payload), "json"


def _check_frame(frame: stream_fns.AppendFrame) -> None:
    """What the library would refuse anyway, refused before the frame is queued."""
    if len(frame.payload) > limits.STREAM_FRAME_MAX_BYTES:
        raise ValidationError("retention_limit_exceeded", str(len(frame.payload)),
                              str(limits.STREAM_FRAME_MAX_BYTES))
    if frame.mode not in STREAM_MODES:
        raise ValidationError("invalid_input", "mode must be durable, summary or best_effort")
    if not 1 <= len(frame.frame_type.encode()) <= limits.STREAM_FRAME_TYPE_MAX_BYTES:
        raise ValidationError("invalid_frame_type",
                              f"frame_type must be 1..{limits.STREAM_FRAME_TYPE_MAX_BYTES} bytes")
    if len(frame.correlation_id.encode()) > limits.STREAM_CORRELATION_ID_MAX_BYTES:
        raise ValidationError("invalid_input", "correlation_id too long")
    if frame.ttl_ms < 0:
        raise ValidationError("invalid_input", "ttl_ms must be >= 0")


LOST_CODES = frozenset({"lease_expired", "lease_revoked", "stale_lease", "execution_not_active",
                        "execution_not_found"})
