"""Typed wrappers for the lease functions (lua/lease.lua)."""

from __future__ import annotations

from ff.core.keys import ExecKeys
from ff.core.records import LeaseHandle
from ff.script.execution import lease_handle
from ff.script.library import FunctionLibrary, Reply


async def renew_lease(lib: FunctionLibrary, eid: str, *, attempt_index: int, attempt_id: str,
                      lease_id: str, lease_epoch: str, lease_ttl_ms: int,
                      history_grace_ms: int = 5000) -> int:
    reply = await lib.call("ff_renew_lease", (ExecKeys(eid).core,), (
        eid, attempt_index, attempt_id, lease_id, lease_epoch, lease_ttl_ms, history_grace_ms,
    ))
    return reply.int(0)


async def mark_lease_expired_if_due(lib: FunctionLibrary, eid: str) -> Reply:
    return await lib.call("ff_mark_lease_expired_if_due", (ExecKeys(eid).core,), (eid,))


async def revoke_lease(lib: FunctionLibrary, eid: str, *, expected_lease_id: str = "",
                       reason: str = "operator") -> Reply:
    return await lib.call("ff_revoke_lease", (ExecKeys(eid).core,),
                          (eid, expected_lease_id, reason))


async def reclaim_execution(lib: FunctionLibrary, eid: str, *, worker_id: str,
                            worker_instance_id: str, lane_id: str, lease_id: str,
                            lease_ttl_ms: int, attempt_id: str,
                            default_max_reclaim_count: int = 100) -> LeaseHandle:
    reply = await lib.call("ff_reclaim_execution", (ExecKeys(eid).core,), (
        eid, worker_id, worker_instance_id, lane_id, lease_id, lease_ttl_ms, attempt_id,
        default_max_reclaim_count,
    ))
    return lease_handle(eid, reply)
