"""Typed wrappers for scheduling, admission and worker-registry functions
(lua/scheduling.lua)."""

from __future__ import annotations

import msgspec

from ff.core.errors import FFError
from ff.core.keys import ExecKeys, IndexKeys, WorkerKeys
from ff.core.partitions import flow_tag
from ff.core.records import (
    ClaimGrant,
    LeaseHandle,
    ReclaimCapExceeded,
    ReclaimGranted,
    ReclaimGrantResult,
    ReclaimNotReclaimable,
)
from ff.script.library import FunctionLibrary, parse_envelope

# How many entries at the head of an index one grant call may look at.
GRANT_SCAN_LIMIT = 16
CLAIM_BATCH_MAX = 100  # leases one ff_claim_batch call may take


class _Grant(msgspec.Struct, frozen=True):
    execution_id: str
    expires_at_ms: int
    kind: str = "claim"
    budget_ids: str = ""
    quota_policy_id: str = ""
    blocked_count: int | None = None


class NextGrant(msgspec.Struct, frozen=True):
    """A grant for the next execution, with the budgets and quota it carries (admission
    runs before the grant is used when it carries any)."""

    grant: ClaimGrant
    budget_ids: str = ""
    quota_policy_id: str = ""


def _next_grant(reply_grant: _Grant, partition: int, lane_id: str) -> NextGrant:
    eid = reply_grant.execution_id
    return NextGrant(
        ClaimGrant(execution_id=eid, partition_key=flow_tag(partition),
                   grant_key=ExecKeys(eid).claim_grant, expires_at_ms=reply_grant.expires_at_ms,
                   lane_id=lane_id, kind=reply_grant.kind,
                   quota_policy_id=reply_grant.quota_policy_id or None),
        reply_grant.budget_ids, reply_grant.quota_policy_id)


class PriorityChange(msgspec.Struct, frozen=True):
    old_priority: int
    new_priority: int


class Heartbeat(msgspec.Struct, frozen=True):
    """`refreshed` (with the liveness TTL) or `not_registered`."""

    outcome: str
    ttl_ms: int | None = None


def _grant_args(worker_id: str, worker_instance_id: str, lane_id: str, capability_hash: str,
                grant_ttl_ms: int, route_snapshot_json: str, admission_summary: str,
                worker_caps_csv: str) -> tuple[object, ...]:
    return (worker_id, worker_instance_id, lane_id, capability_hash, grant_ttl_ms,
            route_snapshot_json, admission_summary, worker_caps_csv)


async def issue_claim_grant(lib: FunctionLibrary, eid: str, *, worker_id: str,
                            worker_instance_id: str, lane_id: str, grant_ttl_ms: int,
                            worker_caps_csv: str, capability_hash: str = "",
                            route_snapshot_json: str = "", admission_summary: str = "",
                            block_on_mismatch: bool = True) -> ClaimGrant:
    reply = await lib.call("ff_issue_claim_grant", (ExecKeys(eid).core,), (
        eid, *_grant_args(worker_id, worker_instance_id, lane_id, capability_hash,
                          grant_ttl_ms, route_snapshot_json, admission_summary,
                          worker_caps_csv),
        "1" if block_on_mismatch else "0",
    ))
    grant = reply.into(_Grant)
    return ClaimGrant(execution_id=eid, partition_key=ExecKeys(eid).tag,
                      grant_key=ExecKeys(eid).claim_grant, expires_at_ms=grant.expires_at_ms,
                      lane_id=lane_id)


async def issue_reclaim_grant(lib: FunctionLibrary, eid: str, *, worker_id: str,
                              worker_instance_id: str, lane_id: str, grant_ttl_ms: int,
                              worker_caps_csv: str, capability_hash: str = "",
                              route_snapshot_json: str = "",
                              admission_summary: str = "") -> ReclaimGrantResult:
    keys = ExecKeys(eid)
    try:
        reply = await lib.call("ff_issue_reclaim_grant", (keys.core,), (
            eid, *_grant_args(worker_id, worker_instance_id, lane_id, capability_hash,
                              grant_ttl_ms, route_snapshot_json, admission_summary,
                              worker_caps_csv),
        ))
    except FFError as exc:
        if exc.code == "execution_not_reclaimable":
            return ReclaimNotReclaimable(eid, ",".join(exc.details))
        raise
    if reply.status == "RECLAIM_CAP_EXCEEDED":
        return ReclaimCapExceeded(eid, int(reply.first()))
    grant = reply.into(_Grant)
    return ReclaimGranted(eid, keys.tag, keys.claim_grant, grant.expires_at_ms, lane_id)


async def issue_grant_for_next(lib: FunctionLibrary, partition: int, *, lane_id: str,
                               worker_id: str, worker_instance_id: str, grant_ttl_ms: int,
                               worker_caps_csv: str) -> NextGrant | None:
    """A grant for the first execution of `lane_id` in `partition` this worker may run
    (lost leases first), or None."""
    idx = IndexKeys(partition)
    reply = await lib.call(
        "ff_issue_grant_for_next",
        (idx.lane(lane_id, "reclaimable"), idx.lane(lane_id, "eligible")),
        (*_grant_args(worker_id, worker_instance_id, lane_id, "", grant_ttl_ms, "", "",
                      worker_caps_csv), GRANT_SCAN_LIMIT),
    )
    if reply.status == "EMPTY":
        return None
    return _next_grant(reply.into(_Grant), partition, lane_id)


async def claim_next(lib: FunctionLibrary, partition: int, *, lane_id: str, worker_id: str,
                     worker_instance_id: str, worker_caps_csv: str, lease_id: str,
                     lease_ttl_ms: int, attempt_id: str, grant_ttl_ms: int
                     ) -> LeaseHandle | NextGrant | None:
    """Grant and lease in one call: the same choice as `issue_grant_for_next`, claimed
    at once. None when nothing in this partition can be taken; a grant instead of a lease
    when the execution carries budgets or a quota (admission comes first)."""
    idx = IndexKeys(partition)
    reply = await lib.call(
        "ff_claim_next",
        (idx.lane(lane_id, "reclaimable"), idx.lane(lane_id, "eligible")),
        (worker_id, worker_instance_id, worker_caps_csv, lease_id, lease_ttl_ms, attempt_id,
         GRANT_SCAN_LIMIT, lane_id, grant_ttl_ms),
    )
    if reply.status == "EMPTY":
        return None
    if reply.status == "ADMIT":
        return _next_grant(reply.into(_Grant), partition, lane_id)
    return reply.into(LeaseHandle)


class LeaseBatch(msgspec.Struct, frozen=True):
    """The leases one `ff_claim_batch` took, and whether it stopped at an execution that
    needs admission first (`claim_next` takes that one)."""

    leases: list[LeaseHandle]
    needs_admission: bool = False


async def claim_batch(lib: FunctionLibrary, partition: int, *, lane_id: str, worker_id: str,
                      worker_instance_id: str, worker_caps_csv: str, lease_ttl_ms: int,
                      ids: list[tuple[str, str]]) -> LeaseBatch:
    """Up to len(ids) leases in one call, each with its (lease_id, attempt_id) from
    `ids` in order; no leases when nothing in this partition can be taken."""
    if not 1 <= len(ids) <= CLAIM_BATCH_MAX:
        raise ValueError(f"claim_batch takes 1..{CLAIM_BATCH_MAX} id pairs")
    idx = IndexKeys(partition)
    reply = await lib.call(
        "ff_claim_batch",
        (idx.lane(lane_id, "reclaimable"), idx.lane(lane_id, "eligible")),
        (worker_id, worker_instance_id, worker_caps_csv, lease_ttl_ms, GRANT_SCAN_LIMIT,
         *(part for pair in ids for part in pair)),
    )
    if reply.status == "EMPTY":
        return LeaseBatch([])
    leases = [parse_envelope(raw).into(LeaseHandle) for raw in reply.values[1:]]
    return LeaseBatch(leases, needs_admission=reply.status == "ADMIT")


async def change_priority(lib: FunctionLibrary, eid: str, new_priority: int) -> PriorityChange:
    reply = await lib.call("ff_change_priority", (ExecKeys(eid).core,), (eid, new_priority))
    return reply.into(PriorityChange)


async def promote_delayed(lib: FunctionLibrary, eid: str, lane_id: str) -> str:
    """`promoted`, or why nothing was done."""
    reply = await lib.call("ff_promote_delayed", (ExecKeys(eid).core,), (eid, lane_id))
    return reply.first()


async def update_progress(lib: FunctionLibrary, eid: str, *, lease_id: str, lease_epoch: str,
                          progress_pct: int | None = None, message: str = "") -> None:
    pct = "" if progress_pct is None else progress_pct
    await lib.call("ff_update_progress", (ExecKeys(eid).core,),
                   (eid, lease_id, lease_epoch, pct, message))


async def block_for_admission(lib: FunctionLibrary, eid: str, reason: str,
                              detail: str = "") -> str:
    """`blocked`, or `not_eligible` when there was nothing to block."""
    reply = await lib.call("ff_block_execution_for_admission", (ExecKeys(eid).core,),
                           (eid, reason, detail))
    return reply.first()


async def unblock_execution(lib: FunctionLibrary, eid: str, reason: str, lane_id: str) -> str:
    """`unblocked`, `not_blocked` or `not_found_cleaned`."""
    reply = await lib.call("ff_unblock_execution", (ExecKeys(eid).core,),
                           (eid, reason, lane_id))
    return reply.first()


async def register_worker(lib: FunctionLibrary, namespace: str, worker_instance_id: str, *,
                          worker_id: str, lanes_csv: str, caps_csv: str, ttl_ms: int) -> str:
    """`registered`, or `refreshed` when the instance was still known."""
    keys = WorkerKeys(namespace)
    reply = await lib.call("ff_register_worker", (
        keys.alive(worker_instance_id), keys.caps(worker_instance_id), keys.index,
    ), (worker_instance_id, worker_id, lanes_csv, caps_csv, ttl_ms))
    return reply.first()


async def heartbeat_worker(lib: FunctionLibrary, namespace: str,
                           worker_instance_id: str) -> Heartbeat:
    keys = WorkerKeys(namespace)
    reply = await lib.call("ff_heartbeat_worker", (
        keys.alive(worker_instance_id), keys.caps(worker_instance_id),
    ), ())
    return reply.into(Heartbeat)


async def deregister_worker(lib: FunctionLibrary, namespace: str,
                            worker_instance_id: str) -> None:
    keys = WorkerKeys(namespace)
    await lib.call("ff_deregister_worker", (
        keys.alive(worker_instance_id), keys.caps(worker_instance_id), keys.index,
    ), (worker_instance_id,))
