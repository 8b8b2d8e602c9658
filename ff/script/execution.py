"""Typed wrappers for the execution lifecycle functions (lua/execution.lua)."""

from __future__ import annotations

from ff.core.keys import ExecKeys
from ff.core.records import LeaseHandle
from ff.script.library import FunctionLibrary, Reply, text


async def create_execution(
    lib: FunctionLibrary,
    eid: str,
    *,
    namespace: str,
    lane_id: str,
    execution_kind: str,
    priority: int,
    creator_identity: str,
    policy_json: str,
    input_payload: bytes,
    payload_encoding: str,
    delay_until: int | None,
    dedup_ttl_ms: int,
    idempotency_key: str,
    tags_json: str,
    execution_deadline_at: int | None,
    partition_id: int,
) -> Reply:
    return await lib.call("ff_create_execution", (ExecKeys(eid).core,), (
        eid, namespace, lane_id, execution_kind, priority, creator_identity, policy_json,
        input_payload, payload_encoding, "" if delay_until is None else delay_until,
        dedup_ttl_ms, idempotency_key, tags_json,
        "" if execution_deadline_at is None else execution_deadline_at, partition_id,
    ))


def lease_handle(eid: str, reply: Reply) -> LeaseHandle:
    """Decodes the reply shared by claim, claim_resumed and reclaim."""
    v = reply.values
    tags = {text(v[i]): text(v[i + 1]) for i in range(13, len(v) - 1, 2)}
    payload = v[9]
    return LeaseHandle(
        execution_id=eid, lease_id=reply.str(0), lease_epoch=reply.str(1),
        expires_at=reply.int(2), attempt_id=reply.str(3), attempt_index=reply.int(4),
        attempt_type=reply.str(5), execution_kind=reply.str(6), namespace=reply.str(7),
        payload_encoding=reply.str(8),
        payload=payload if isinstance(payload, bytes) else text(payload).encode(),
        lane_id=reply.str(10), created_at=reply.int(11), priority=reply.int(12), tags=tags,
    )


def _lease_args(
    eid: str, worker_id: str, worker_instance_id: str, lane_id: str, lease_id: str,
    lease_ttl_ms: int, attempt_id: str,
) -> tuple[object, ...]:
    return (eid, worker_id, worker_instance_id, lane_id, lease_id, lease_ttl_ms, attempt_id)


async def claim_execution(lib: FunctionLibrary, eid: str, *, worker_id: str,
                          worker_instance_id: str, lane_id: str, lease_id: str,
                          lease_ttl_ms: int, attempt_id: str) -> LeaseHandle:
    args = _lease_args(eid, worker_id, worker_instance_id, lane_id, lease_id, lease_ttl_ms,
                       attempt_id)
    return lease_handle(eid, await lib.call("ff_claim_execution", (ExecKeys(eid).core,), args))


async def claim_resumed_execution(lib: FunctionLibrary, eid: str, *, worker_id: str,
                                  worker_instance_id: str, lane_id: str, lease_id: str,
                                  lease_ttl_ms: int, attempt_id: str) -> LeaseHandle:
    args = _lease_args(eid, worker_id, worker_instance_id, lane_id, lease_id, lease_ttl_ms,
                       attempt_id)
    reply = await lib.call("ff_claim_resumed_execution", (ExecKeys(eid).core,), args)
    return lease_handle(eid, reply)


async def complete_execution(lib: FunctionLibrary, eid: str, *, lease_id: str = "",
                             lease_epoch: str = "", attempt_id: str = "",
                             result: bytes = b"", source: str = "") -> Reply:
    return await lib.call("ff_complete_execution", (ExecKeys(eid).core,),
                          (eid, lease_id, lease_epoch, attempt_id, result, source))


async def fail_execution(lib: FunctionLibrary, eid: str, *, lease_id: str = "",
                         lease_epoch: str = "", attempt_id: str = "", reason: str = "",
                         category: str = "", retryable: bool = True,
                         source: str = "") -> Reply:
    return await lib.call("ff_fail_execution", (ExecKeys(eid).core,), (
        eid, lease_id, lease_epoch, attempt_id, reason, source, category,
        "1" if retryable else "0",
    ))


async def cancel_execution(lib: FunctionLibrary, eid: str, *, reason: str, source: str,
                           lease_id: str = "", lease_epoch: str = "") -> Reply:
    return await lib.call("ff_cancel_execution", (ExecKeys(eid).core,),
                          (eid, reason, source, lease_id, lease_epoch))


async def delay_execution(lib: FunctionLibrary, eid: str, *, delay_until: int,
                          lease_id: str = "", lease_epoch: str = "", attempt_id: str = "",
                          source: str = "") -> Reply:
    return await lib.call("ff_delay_execution", (ExecKeys(eid).core,),
                          (eid, lease_id, lease_epoch, attempt_id, delay_until, source))


async def expire_execution(lib: FunctionLibrary, eid: str, reason: str) -> Reply:
    return await lib.call("ff_expire_execution", (ExecKeys(eid).core,), (eid, reason))


async def replay_execution(lib: FunctionLibrary, eid: str, *, requested_by: str = "",
                           reason: str = "") -> Reply:
    return await lib.call("ff_replay_execution", (ExecKeys(eid).core,),
                          (eid, requested_by, reason))


async def set_execution_tags(lib: FunctionLibrary, eid: str, tags: dict[str, str]) -> Reply:
    flat = [item for pair in tags.items() for item in pair]
    return await lib.call("ff_set_execution_tags", (ExecKeys(eid).core,), flat)


async def purge_execution(lib: FunctionLibrary, eid: str, *, lane_id: str,
                          default_retention_ms: int) -> Reply:
    return await lib.call("ff_purge_execution", (ExecKeys(eid).core,),
                          (eid, lane_id, default_retention_ms))
