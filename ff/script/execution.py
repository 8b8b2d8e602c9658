"""Typed wrappers for the execution lifecycle functions (lua/execution.lua).

Each wrapper builds KEYS/ARGV in the order the function's header numbers them and
returns a Struct (or a typed scalar) decoded by `Reply.into`.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ff.core.errors import FFError
from ff.core.keys import ExecKeys
from ff.core.records import CreateResult
from ff.script.library import FunctionLibrary, Reply


class _Created(msgspec.Struct, frozen=True):
    execution_id: str
    public_state: str = ""


class FailOutcome(msgspec.Struct, frozen=True):
    """`retry_scheduled` (with when the retry may run) or `terminal_failed`."""

    outcome: str
    retry_at: int | None = None


class CancelOutcome(msgspec.Struct, frozen=True):
    outcome: str
    previous_phase: str


class ExpireOutcome(msgspec.Struct, frozen=True):
    """`expired` (with the phase it left), `already_terminal`, `not_found_cleaned` or
    `not_due`."""

    outcome: str
    previous_phase: str = ""


class PurgeOutcome(msgspec.Struct, frozen=True):
    """`purged` (with how many keys went), `not_due`, `not_terminal` or
    `not_found_cleaned`."""

    outcome: str
    deleted_keys: int | None = None


class CreateCall(msgspec.Struct, frozen=True):
    """One ff_create_execution call's arguments, checked by the caller."""

    eid: str
    namespace: str
    lane_id: str
    execution_kind: str
    priority: int
    creator_identity: str
    policy_json: str
    input_payload: bytes
    payload_encoding: str
    delay_until: int | None
    dedup_ttl_ms: int
    idempotency_key: str
    tags_json: str
    execution_deadline_at: int | None
    partition_id: int

    def keys_args(self) -> tuple[tuple[str], tuple[object, ...]]:
        return (ExecKeys(self.eid).core,), (
            self.eid, self.namespace, self.lane_id, self.execution_kind, self.priority,
            self.creator_identity, self.policy_json, self.input_payload,
            self.payload_encoding, "" if self.delay_until is None else self.delay_until,
            self.dedup_ttl_ms, self.idempotency_key, self.tags_json,
            "" if self.execution_deadline_at is None else self.execution_deadline_at,
            self.partition_id)


def _created(reply: Reply) -> CreateResult:
    created = reply.into(_Created)
    return CreateResult(created.execution_id, created.public_state,
                        duplicate=reply.status == "DUPLICATE")


async def create_execution(lib: FunctionLibrary, call: CreateCall) -> CreateResult:
    """The new execution and its public state, or (`duplicate`) the id of the one that
    already exists for this id or idempotency key, with no public state."""
    keys, args = call.keys_args()
    return _created(await lib.call("ff_create_execution", keys, args))


async def create_executions(lib: FunctionLibrary, calls: Sequence[CreateCall]
                            ) -> list[CreateResult | FFError]:
    """`create_execution` for each call, pipelined in one round trip and run in order
    (a later item sees an earlier one's idempotency key); each answer is the result or
    that item's error."""
    answers = await lib.call_many("ff_create_execution", [c.keys_args() for c in calls])
    return [a if isinstance(a, FFError) else _created(a) for a in answers]


async def complete_execution(lib: FunctionLibrary, eid: str, *, lease_id: str = "",
                             lease_epoch: str = "", attempt_id: str = "",
                             result: bytes = b"", source: str = "") -> bool:
    """True when this call completed the execution; False when it repeats the same
    holder's earlier call that had (nothing written)."""
    reply = await lib.call("ff_complete_execution", (ExecKeys(eid).core,),
                           (eid, lease_id, lease_epoch, attempt_id, result, source))
    return reply.status == "OK"


async def fail_execution(lib: FunctionLibrary, eid: str, *, lease_id: str = "",
                         lease_epoch: str = "", attempt_id: str = "", reason: str = "",
                         category: str = "", retryable: bool = True,
                         source: str = "") -> FailOutcome:
    reply = await lib.call("ff_fail_execution", (ExecKeys(eid).core,), (
        eid, lease_id, lease_epoch, attempt_id, reason, source, category,
        "1" if retryable else "0",
    ))
    return reply.into(FailOutcome)


async def cancel_execution(lib: FunctionLibrary, eid: str, *, reason: str, source: str,
                           lease_id: str = "", lease_epoch: str = "") -> CancelOutcome:
    reply = await lib.call("ff_cancel_execution", (ExecKeys(eid).core,),
                           (eid, reason, source, lease_id, lease_epoch))
    return reply.into(CancelOutcome)


async def delay_execution(lib: FunctionLibrary, eid: str, *, delay_until: int,
                          lease_id: str = "", lease_epoch: str = "", attempt_id: str = "",
                          source: str = "") -> int:
    """Gives the attempt back; returns the delay_until the library stored."""
    reply = await lib.call("ff_delay_execution", (ExecKeys(eid).core,),
                           (eid, lease_id, lease_epoch, attempt_id, delay_until, source))
    return int(reply.first())


async def expire_execution(lib: FunctionLibrary, eid: str, reason: str) -> ExpireOutcome:
    reply = await lib.call("ff_expire_execution", (ExecKeys(eid).core,), (eid, reason))
    return reply.into(ExpireOutcome)


async def replay_execution(lib: FunctionLibrary, eid: str, *, requested_by: str = "",
                           reason: str = "") -> str:
    """Runs a terminal execution again; returns its new public state."""
    reply = await lib.call("ff_replay_execution", (ExecKeys(eid).core,),
                           (eid, requested_by, reason))
    return reply.first()


async def set_execution_tags(lib: FunctionLibrary, eid: str, tags: dict[str, str]) -> int:
    """Returns how many tags were written."""
    flat = [item for pair in tags.items() for item in pair]
    reply = await lib.call("ff_set_execution_tags", (ExecKeys(eid).core,), flat)
    return int(reply.first())


async def purge_execution(lib: FunctionLibrary, eid: str, *, lane_id: str,
                          default_retention_ms: int) -> PurgeOutcome:
    reply = await lib.call("ff_purge_execution", (ExecKeys(eid).core,),
                           (eid, lane_id, default_retention_ms))
    return reply.into(PurgeOutcome)
