"""Typed wrappers for the quota functions (lua/quota.lua). Every call names keys of the
one `{q:K}` partition its policy id hashes to."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ff.core.keys import QuotaKeys
from ff.script.library import FunctionLibrary, Reply


class Admission(msgspec.Struct, frozen=True):
    """`ADMITTED`, `ALREADY_ADMITTED`, `RATE_EXCEEDED` (with `retry_after_ms`) or
    `CONCURRENCY_EXCEEDED` (with the count and cap)."""

    status: str
    retry_after_ms: int = 0
    concurrency: int = 0
    cap: int = 0

    @property
    def admitted(self) -> bool:
        return self.status in ("ADMITTED", "ALREADY_ADMITTED")


class _Occupancy(msgspec.Struct, frozen=True):
    concurrency: int
    cap: int


class QuotaRepair(msgspec.Struct, frozen=True):
    counter_before: int
    counter_after: int


async def create_quota_policy(lib: FunctionLibrary, keys: QuotaKeys, *, window_seconds: int,
                              max_requests_per_window: int, max_concurrent: int) -> bool:
    """True if this call created the policy (False: it existed)."""
    reply = await lib.call(
        "ff_create_quota_policy", (keys.def_, keys.concurrency, keys.policies),
        (keys.quota_policy_id, window_seconds, max_requests_per_window, max_concurrent),
    )
    return reply.status == "OK"


def _admission_keys(keys: QuotaKeys, execution_id: str) -> tuple[str, ...]:
    return (keys.def_, keys.window, keys.concurrency, keys.admitted(execution_id),
            keys.admitted_set)


async def check_admission(lib: FunctionLibrary, keys: QuotaKeys, execution_id: str
                          ) -> Admission:
    reply = await lib.call("ff_check_admission_and_record",
                           _admission_keys(keys, execution_id), (execution_id,))
    return _admission(reply)


async def check_admission_after_reads(lib: FunctionLibrary, reads: Sequence[Sequence[object]],
                                      keys: QuotaKeys, execution_id: str
                                      ) -> tuple[list[object], Admission]:
    """`reads` (plain commands, e.g. budget reads) and the admission check in one round
    trip: the reads' replies and the verdict."""
    replies, reply = await lib.call_after_reads(
        reads, "ff_check_admission_and_record", _admission_keys(keys, execution_id),
        (execution_id,))
    return replies, _admission(reply)


def _admission(reply: Reply) -> Admission:
    if reply.status == "RATE_EXCEEDED":
        return Admission(reply.status, retry_after_ms=int(reply.first()))
    if reply.status == "CONCURRENCY_EXCEEDED":
        counts = reply.into(_Occupancy)
        return Admission(reply.status, concurrency=counts.concurrency, cap=counts.cap)
    return Admission(reply.status)


async def release_admission(lib: FunctionLibrary, keys: QuotaKeys, execution_id: str) -> str:
    """`released`, or `noop` when the execution held no slot."""
    reply = await lib.call("ff_release_admission",
                           (keys.admitted(execution_id), keys.admitted_set, keys.concurrency),
                           (execution_id,))
    return reply.first()


async def reconcile_quota(lib: FunctionLibrary, keys: QuotaKeys) -> QuotaRepair | None:
    """Trims the window and repairs the counter; None when the policy is gone."""
    reply = await lib.call("ff_reconcile_quota",
                           (keys.def_, keys.window, keys.concurrency, keys.admitted_set), ())
    if reply.first() == "gone":
        return None
    return reply.into(QuotaRepair)
