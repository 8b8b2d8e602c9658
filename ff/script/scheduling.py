"""Typed wrappers for scheduling, admission and worker-registry functions
(lua/scheduling.lua)."""

from __future__ import annotations

from ff.core.keys import ExecKeys, WorkerKeys
from ff.script.library import FunctionLibrary, Reply


async def issue_claim_grant(lib: FunctionLibrary, eid: str, *, worker_id: str,
                            worker_instance_id: str, lane_id: str, grant_ttl_ms: int,
                            worker_caps_csv: str, capability_hash: str = "",
                            route_snapshot_json: str = "", admission_summary: str = "",
                            block_on_mismatch: bool = True, reclaim: bool = False) -> Reply:
    name = "ff_issue_reclaim_grant" if reclaim else "ff_issue_claim_grant"
    return await lib.call(name, (ExecKeys(eid).core,), (
        eid, worker_id, worker_instance_id, lane_id, capability_hash, grant_ttl_ms,
        route_snapshot_json, admission_summary, worker_caps_csv,
        "1" if block_on_mismatch else "0",
    ))


async def change_priority(lib: FunctionLibrary, eid: str, new_priority: int) -> Reply:
    return await lib.call("ff_change_priority", (ExecKeys(eid).core,), (eid, new_priority))


async def promote_delayed(lib: FunctionLibrary, eid: str, lane_id: str) -> Reply:
    return await lib.call("ff_promote_delayed", (ExecKeys(eid).core,), (eid, lane_id))


async def update_progress(lib: FunctionLibrary, eid: str, *, lease_id: str, lease_epoch: str,
                          progress_pct: int | None = None, message: str = "") -> Reply:
    pct = "" if progress_pct is None else progress_pct
    return await lib.call("ff_update_progress", (ExecKeys(eid).core,),
                          (eid, lease_id, lease_epoch, pct, message))


async def block_for_admission(lib: FunctionLibrary, eid: str, reason: str,
                              detail: str = "") -> Reply:
    return await lib.call("ff_block_execution_for_admission", (ExecKeys(eid).core,),
                          (eid, reason, detail))


async def unblock_execution(lib: FunctionLibrary, eid: str, reason: str,
                            lane_id: str) -> Reply:
    return await lib.call("ff_unblock_execution", (ExecKeys(eid).core,),
                          (eid, reason, lane_id))


async def register_worker(lib: FunctionLibrary, namespace: str, worker_instance_id: str, *,
                          worker_id: str, lanes_csv: str, caps_csv: str, ttl_ms: int) -> Reply:
    keys = WorkerKeys(namespace)
    return await lib.call("ff_register_worker", (
        keys.alive(worker_instance_id), keys.caps(worker_instance_id), keys.index,
    ), (worker_instance_id, worker_id, lanes_csv, caps_csv, ttl_ms))


async def heartbeat_worker(lib: FunctionLibrary, namespace: str,
                           worker_instance_id: str) -> Reply:
    keys = WorkerKeys(namespace)
    return await lib.call("ff_heartbeat_worker", (
        keys.alive(worker_instance_id), keys.caps(worker_instance_id),
    ), ())


async def deregister_worker(lib: FunctionLibrary, namespace: str,
                            worker_instance_id: str) -> Reply:
    keys = WorkerKeys(namespace)
    return await lib.call("ff_deregister_worker", (
        keys.alive(worker_instance_id), keys.caps(worker_instance_id), keys.index,
    ), (worker_instance_id,))
