"""Typed wrappers for the waitpoint functions (lua/waitpoint.lua): suspend, pending
waitpoints, signal delivery, resume, suspension timeout, waitpoint close and the HMAC
keystore."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ff.core.keys import ExecKeys, keystore_key, waitpoint_key
from ff.core.records import DeliverSignalResult, PendingWaitpoint, SuspendOutcome
from ff.script.library import FunctionLibrary, text


class _Suspended(msgspec.Struct, frozen=True):
    suspension_id: str
    waitpoint_id: str
    waitpoint_key: str
    waitpoint_token: str
    timeout_at: int | None
    state: str
    additional_waitpoints: list[tuple[str, str, str]] = msgspec.field(default_factory=list)


class ExpireSuspensionOutcome(msgspec.Struct, frozen=True):
    """The behaviour applied (fail, cancel, expire, auto_resume, escalate) with the new
    public state, or why nothing was done (not_yet_due, ..._cleaned)."""

    outcome: str
    public_state: str = ""


class RotateOutcome(msgspec.Struct, frozen=True):
    """`rotated` (previous kid, new kid, kids garbage-collected) or `noop` (kid)."""

    outcome: str
    previous_kid: str = ""
    new_kid: str = ""
    gc_count: int | None = None


class HmacKids(msgspec.Struct, frozen=True):
    current_kid: str
    count: int


async def suspend_execution(
    lib: FunctionLibrary, eid: str, *, lease_id: str, lease_epoch: str, attempt_id: str,
    suspension_id: str, waitpoint_id: str, waitpoint_key: str, reason_code: str,
    requested_by: str, timeout_ms: int | None, timeout_behavior: str, condition_json: str,
    use_pending: bool, additional: Sequence[tuple[str, str]] = (),
) -> SuspendOutcome:
    """The suspension; a repeat of a call that landed (same suspension id and lease)
    returns the same waitpoint and token."""
    args: list[object] = [
        eid, lease_id, lease_epoch, attempt_id, suspension_id, waitpoint_id, waitpoint_key,
        reason_code, requested_by, "" if timeout_ms is None else timeout_ms, timeout_behavior,
        condition_json, "1" if use_pending else "", len(additional),
    ]
    for wp_id, key in additional:
        args += [wp_id, key]
    reply = await lib.call("ff_suspend_execution", (ExecKeys(eid).core,), args)
    got = reply.into(_Suspended)
    return SuspendOutcome(got.suspension_id, got.waitpoint_id, got.waitpoint_key,
                          got.waitpoint_token, got.timeout_at, got.state,
                          got.additional_waitpoints)


async def create_pending_waitpoint(
    lib: FunctionLibrary, eid: str, *, lease_id: str, lease_epoch: str, attempt_id: str,
    waitpoint_id: str, waitpoint_key: str, expires_in_ms: int,
) -> PendingWaitpoint:
    reply = await lib.call("ff_create_pending_waitpoint", (ExecKeys(eid).core,), (
        eid, lease_id, lease_epoch, attempt_id, waitpoint_id, waitpoint_key, expires_in_ms))
    return reply.into(PendingWaitpoint)


async def deliver_signal(
    lib: FunctionLibrary, eid: str, *, waitpoint_id: str, signal_id: str, signal_name: str,
    waitpoint_token: str, signal_category: str = "", source_type: str = "",
    source_identity: str = "", payload: bytes = b"", payload_encoding: str = "",
    idempotency_key: str = "", correlation_id: str = "", dedup_ttl_ms: int | None = None,
    resume_delay_ms: int | None = None, max_signals_per_execution: int | None = None,
    signal_maxlen: int | None = None, created_at: int | None = None, target_scope: str = "",
) -> DeliverSignalResult:
    def opt(v: int | None) -> object:
        return "" if v is None else v

    reply = await lib.call("ff_deliver_signal", (ExecKeys(eid).core,), (
        eid, waitpoint_id, signal_id, signal_name, signal_category, source_type,
        source_identity, payload, payload_encoding, idempotency_key, correlation_id,
        opt(dedup_ttl_ms), opt(resume_delay_ms), opt(max_signals_per_execution),
        opt(signal_maxlen), waitpoint_token, opt(created_at), target_scope,
    ))
    if reply.status == "DUPLICATE":
        return DeliverSignalResult(reply.first(), "", duplicate=True)
    return DeliverSignalResult(reply.first(), text(reply.values[1]))


async def resume_execution(lib: FunctionLibrary, eid: str, *,
                           resume_delay_ms: int = 0) -> str:
    """Operator resume without the condition; returns the new public state."""
    reply = await lib.call("ff_resume_execution", (ExecKeys(eid).core,),
                           (eid, resume_delay_ms))
    return reply.first()


async def expire_suspension(lib: FunctionLibrary, eid: str) -> ExpireSuspensionOutcome:
    reply = await lib.call("ff_expire_suspension", (ExecKeys(eid).core,), (eid,))
    return reply.into(ExpireSuspensionOutcome)


async def close_waitpoint(lib: FunctionLibrary, tag: str, waitpoint_id: str, *,
                          reason: str = "", only_if_due: bool = False) -> str:
    reply = await lib.call("ff_close_waitpoint", (waitpoint_key(tag, waitpoint_id),), (
        waitpoint_id, reason, "1" if only_if_due else ""))
    return reply.first()


async def install_hmac_secret(lib: FunctionLibrary, tag: str, secret_hex: str) -> str:
    """installed | repaired | present | mismatch."""
    reply = await lib.call("ff_install_waitpoint_hmac_secret", (keystore_key(tag),),
                           (secret_hex,))
    return reply.first()


async def rotate_hmac_secret(lib: FunctionLibrary, tag: str, *, new_kid: str,
                             new_secret_hex: str, grace_ms: int) -> RotateOutcome:
    reply = await lib.call("ff_rotate_waitpoint_hmac_secret", (keystore_key(tag),),
                           (new_kid, new_secret_hex, grace_ms))
    if reply.status == "OK" and reply.first() == "noop":
        return RotateOutcome("noop", new_kid=text(reply.values[1]))
    return reply.into(RotateOutcome)


async def list_hmac_kids(lib: FunctionLibrary, tag: str) -> tuple[str, dict[str, int]]:
    """(current kid, {demoted kid that still validates: its expiry})."""
    reply = await lib.call("ff_list_waitpoint_hmac_kids", (keystore_key(tag),), ())
    values = [text(v) for v in reply.values]
    pairs = values[2:]
    return values[0], {pairs[i]: int(pairs[i + 1]) for i in range(0, len(pairs) - 1, 2)}
