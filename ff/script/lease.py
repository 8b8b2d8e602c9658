"""Typed wrappers for the lease functions (lua/lease.lua): claiming, renewing,
expiring, revoking and reclaiming."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ff.core.errors import FFError
from ff.core.keys import ExecKeys
from ff.core.records import LeaseHandle, RevokeResult
from ff.script.library import FunctionLibrary


async def _take_lease(lib: FunctionLibrary, function: str, eid: str, worker_id: str,
                      worker_instance_id: str, lease_id: str, lease_ttl_ms: int,
                      attempt_id: str) -> LeaseHandle:
    reply = await lib.call(function, (ExecKeys(eid).core,), (
        eid, worker_id, worker_instance_id, lease_id, lease_ttl_ms, attempt_id, ""))
    return reply.into(LeaseHandle)


async def claim_execution(lib: FunctionLibrary, eid: str, *, worker_id: str,
                          worker_instance_id: str, lease_id: str, lease_ttl_ms: int,
                          attempt_id: str) -> LeaseHandle:
    """Consumes this worker's claim grant: a fresh attempt (initial, retry or replay)."""
    return await _take_lease(lib, "ff_claim_execution", eid, worker_id, worker_instance_id,
                             lease_id, lease_ttl_ms, attempt_id)


async def claim_resumed_execution(lib: FunctionLibrary, eid: str, *, worker_id: str,
                                  worker_instance_id: str, lease_id: str, lease_ttl_ms: int,
                                  attempt_id: str) -> LeaseHandle:
    """Consumes this worker's claim grant: a new lease on the interrupted attempt."""
    return await _take_lease(lib, "ff_claim_resumed_execution", eid, worker_id,
                             worker_instance_id, lease_id, lease_ttl_ms, attempt_id)


async def reclaim_execution(lib: FunctionLibrary, eid: str, *, worker_id: str,
                            worker_instance_id: str, lease_id: str, lease_ttl_ms: int,
                            attempt_id: str) -> LeaseHandle:
    """A new attempt for an execution whose lease expired or was revoked."""
    return await _take_lease(lib, "ff_reclaim_execution", eid, worker_id, worker_instance_id,
                             lease_id, lease_ttl_ms, attempt_id)


async def renew_lease(lib: FunctionLibrary, eid: str, *, attempt_index: int, attempt_id: str,
                      lease_id: str, lease_epoch: str, lease_ttl_ms: int,
                      history_grace_ms: int = 5000) -> int:
    """Returns the lease's new expiry (server ms)."""
    reply = await lib.call("ff_renew_lease", (ExecKeys(eid).core,), (
        eid, attempt_index, attempt_id, lease_id, lease_epoch, lease_ttl_ms, history_grace_ms,
    ))
    return int(reply.first())


class Renewal(msgspec.Struct, frozen=True):
    """One lease to renew in `renew_leases`."""

    execution_id: str
    attempt_index: int
    attempt_id: str
    lease_id: str
    lease_epoch: str
    lease_ttl_ms: int


async def renew_leases(lib: FunctionLibrary, renewals: Sequence[Renewal],
                       history_grace_ms: int = 5000) -> list[int | FFError]:
    """`renew_lease` for many leases in one pipelined round trip: per lease its new
    expiry (server ms) or the error it was refused with."""
    answers = await lib.call_many("ff_renew_lease", [
        ((ExecKeys(r.execution_id).core,), (
            r.execution_id, r.attempt_index, r.attempt_id, r.lease_id, r.lease_epoch,
            r.lease_ttl_ms, history_grace_ms))
        for r in renewals])
    return [a if isinstance(a, FFError) else int(a.first()) for a in answers]


async def mark_lease_expired_if_due(lib: FunctionLibrary, eid: str) -> str:
    """`marked_expired`, or why nothing was done."""
    reply = await lib.call("ff_mark_lease_expired_if_due", (ExecKeys(eid).core,), (eid,))
    return reply.first()


async def revoke_lease(lib: FunctionLibrary, eid: str, *, expected_lease_id: str = "",
                       reason: str = "operator") -> RevokeResult:
    reply = await lib.call("ff_revoke_lease", (ExecKeys(eid).core,),
                           (eid, expected_lease_id, reason))
    revoked = reply.into(RevokeResult)
    if reply.status == "ALREADY_SATISFIED":
        return RevokeResult("already_satisfied", reason=revoked.status)
    return revoked
