"""Executions: create, cancel, read, list, reprioritise and replay."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ff.admission import require_attachments
from ff.api._parts import ServerParts, payload_bytes
from ff.core.errors import FFError, NotFoundError, ValidationError
from ff.core.ids import ExecutionId, validate_lane
from ff.core.keys import ExecKeys, IndexKeys
from ff.core.policy import capabilities_csv, decode_policy, encode_policy
from ff.core.records import (
    CancelExecutionArgs,
    CancelResult,
    CreateExecutionArgs,
    CreateResult,
    ExecutionInfo,
    ExecutionPage,
)
from ff.core.states import PublicState, StateVector, lane_indexes_for
from ff.scheduler import mark_lane_work
from ff.script import execution as execution_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import text

DEFAULT_DEDUP_TTL_MS = 24 * 3600 * 1000
LIST_LIMIT_MAX = 1000
CREATE_BATCH_MAX = 1000  # executions per create_executions call (and batch request)


class ExecutionsApi(ServerParts):
    async def create_execution(self, args: CreateExecutionArgs) -> CreateResult:
        call = await self._create_call(args)
        created = await execution_fns.create_execution(self.library, call)
        await self._register_lane(call.lane_id)
        await self._mark_work([(call, created)])
        return await self._settled(created)

    async def create_executions(self, items: Sequence[CreateExecutionArgs]
                                ) -> list[CreateResult | FFError]:
        """Many submissions in one pipelined round trip (at most CREATE_BATCH_MAX). The
        answers are in order, each the item's `CreateResult` or its own error: a bad
        item fails alone, and the others are created all the same."""
        if len(items) > CREATE_BATCH_MAX:
            raise ValidationError("batch_too_large",
                                  f"at most {CREATE_BATCH_MAX} executions per batch")
        answers: list[CreateResult | FFError | None] = [None] * len(items)
        calls: list[tuple[int, execution_fns.CreateCall]] = []
        for i, args in enumerate(items):
            try:
                calls.append((i, await self._create_call(args)))
            except FFError as exc:
                answers[i] = exc
        created = await execution_fns.create_executions(self.library, [c for _, c in calls])
        for lane in {call.lane_id for _, call in calls}:
            await self._register_lane(lane)
        await self._mark_work([(call, outcome) for (_, call), outcome in zip(
            calls, created, strict=True) if not isinstance(outcome, FFError)])
        for (i, _), outcome in zip(calls, created, strict=True):
            answers[i] = outcome if isinstance(outcome, FFError) else await self._settled(
                outcome)
        return [a for a in answers if a is not None]

    async def _mark_work(self, created: list[tuple[execution_fns.CreateCall, CreateResult]]
                         ) -> None:
        """New waiting executions mark their partitions in their lanes' work hints, once
        per lane and partition."""
        marks = {(call.lane_id, call.partition_id) for call, result in created
                 if not result.duplicate and result.public_state == PublicState.WAITING}
        for lane, partition in sorted(marks):
            await mark_lane_work(self._client, self._config.partitions, lane, partition)

    async def _settled(self, created: CreateResult) -> CreateResult:
        """A duplicate answers with the state of the execution that already exists."""
        if created.duplicate:
            existing = created.execution_id
            return CreateResult(existing, await self.get_execution_state(existing), True)
        return created

    async def _create_call(self, args: CreateExecutionArgs) -> execution_fns.CreateCall:
        """A submission checked and turned into its library call (nothing written)."""
        lane = validate_lane(args.lane_id)
        if not args.execution_kind:
            raise ValidationError("invalid_input", "execution_kind is required")
        partitions = self._config.partitions
        if args.execution_id is None:
            dedup = (f"{args.namespace}\x00{args.idempotency_key}" if args.idempotency_key
                     else None)
            eid = ExecutionId.solo(lane, partitions, self._config.lane_spread, dedup)
        else:
            eid = ExecutionId.parse(args.execution_id)
        if eid.partition >= partitions.num_flow_partitions:
            raise ValidationError("invalid_execution_id", "partition outside the configured range")
        if args.partition_id is not None and args.partition_id != eid.partition:
            raise ValidationError("invalid_input", "partition_id does not match execution_id")
        policy = decode_policy(msgspec.to_builtins(args.policy)) if args.policy else None
        if policy is not None:
            capabilities_csv(policy.required_capabilities(), "required")
            budgets, quota = policy.admission_ids()
            await require_attachments(self._client, partitions, budgets, quota)
            policy = msgspec.structs.replace(policy, budget_ids=budgets or None,
                                             quota_policy_id=quota)
        delay_until = args.delay_until
        if delay_until is None and policy is not None:
            delay_until = policy.delay_until
        dedup_ttl = 0
        if args.idempotency_key:
            dedup_ttl = (policy.dedup_window_ms if policy and policy.dedup_window_ms
                         else DEFAULT_DEDUP_TTL_MS)
        return execution_fns.CreateCall(
            eid, namespace=args.namespace, lane_id=lane, execution_kind=args.execution_kind,
            priority=args.priority, creator_identity=args.creator_identity,
            policy_json=encode_policy(policy),
            input_payload=payload_bytes(args.input_payload, "input_payload"),
            payload_encoding=args.payload_encoding or "", delay_until=delay_until,
            dedup_ttl_ms=dedup_ttl, idempotency_key=args.idempotency_key or "",
            tags_json=msgspec.json.encode(args.tags).decode() if args.tags else "",
            execution_deadline_at=args.execution_deadline_at, partition_id=eid.partition,
        )

    async def cancel_execution(self, execution_id: str, args: CancelExecutionArgs) -> CancelResult:
        eid = ExecutionId.parse(execution_id)
        if args.execution_id is not None and args.execution_id != eid:
            raise ValidationError("invalid_input", "execution_id in the body does not match")
        cancelled = await execution_fns.cancel_execution(
            self.library, eid, reason=args.reason, source=args.source or "operator_override",
            lease_id=args.lease_id or "",
            lease_epoch="" if args.lease_epoch is None else str(args.lease_epoch),
        )
        return CancelResult(eid, "cancelled", cancelled.previous_phase)

    async def get_execution_state(self, execution_id: str) -> str:
        eid = ExecutionId.parse(execution_id)
        state = await self._client.execute("HGET", ExecKeys(eid).core, "public_state")
        if state is None:
            raise NotFoundError("execution_not_found", f"execution not found: {eid}")
        return text(state)

    async def get_execution_result(self, execution_id: str) -> bytes | None:
        """The stored result; poll get_execution_state for `completed` first."""
        eid = ExecutionId.parse(execution_id)
        result: bytes | None = await self._client.execute("GET", ExecKeys(eid).result)
        return result

    async def get_execution(self, execution_id: str) -> ExecutionInfo:
        eid = ExecutionId.parse(execution_id)
        raw = await self._client.execute("HGETALL", ExecKeys(eid).core)
        if not raw:
            raise NotFoundError("execution_not_found", f"execution not found: {eid}")
        core = {text(k): text(v) for k, v in raw.items()}
        return ExecutionInfo(
            execution_id=eid,
            namespace=core.get("namespace", ""),
            lane_id=core.get("lane_id", ""),
            priority=int(core.get("priority") or 0),
            execution_kind=core.get("execution_kind", ""),
            state_vector=StateVector(
                lifecycle_phase=core.get("lifecycle_phase", ""),
                ownership_state=core.get("ownership_state", ""),
                eligibility_state=core.get("eligibility_state", ""),
                blocking_reason=core.get("blocking_reason", ""),
                terminal_outcome=core.get("terminal_outcome", ""),
                attempt_state=core.get("attempt_state", ""),
                public_state=core.get("public_state", ""),
            ),
            public_state=core.get("public_state", ""),
            created_at=core.get("created_at", ""),
            current_attempt_index=int(core.get("current_attempt_index") or 0),
            blocking_detail=core.get("blocking_detail", ""),
            flow_id=core.get("flow_id") or None,
            started_at=core.get("started_at") or None,
            completed_at=core.get("completed_at") or None,
        )

    async def list_executions(
        self,
        partition: int,
        *,
        cursor: str | None = None,
        limit: int = 50,
        lane: str | None = None,
        state: str | None = None,
        offset: int = 0,
    ) -> ExecutionPage:
        """One page of a partition's executions, at a cost of O(page size).

        Cursor form (no lane): ids in order, strictly after `cursor` (a range of the
        partition's id index). Filter form (lane given): the executions of `lane` whose
        public state is `state` (default `waiting`), from `offset`, walking every lane
        index that can hold that state (waiting: eligible, route- and operator-blocked;
        rate_limited: budget- and quota-blocked; ...) in a fixed order.
        """
        if not 0 <= partition < self._config.partitions.num_flow_partitions:
            raise ValidationError("invalid_input", "partition outside the configured range")
        limit = max(0, min(limit, LIST_LIMIT_MAX))
        if offset < 0:
            raise ValidationError("invalid_offset", "offset must not be negative")
        idx = IndexKeys(partition)
        if lane is None:
            return await self._page_by_id(idx, cursor, limit)
        validate_lane(lane)
        wanted = state or PublicState.WAITING
        if wanted not in set(PublicState):
            raise ValidationError("invalid_input", f"unknown state filter: {state!r}")
        indexes = lane_indexes_for(wanted)
        ids = await self._range_across(
            [idx.lane(lane, name) for name in indexes], offset, limit)
        if ids:
            pipe = self._client.pipeline()
            for eid in ids:
                pipe.execute_command("HGET", ExecKeys(eid).core, "public_state")
            states = await pipe.run(raise_on_error=True)
            ids = [e for e, s in zip(ids, states, strict=True) if text(s) == wanted]
        return ExecutionPage(ids, None)

    async def _page_by_id(self, idx: IndexKeys, cursor: str | None, limit: int) -> ExecutionPage:
        if limit == 0:
            return ExecutionPage([], None)
        start = "-"
        if cursor:
            start = "(" + ExecutionId.parse(cursor)
        members = await self._client.execute(
            "ZRANGE", idx.all_executions, start, "+", "BYLEX", "LIMIT", 0, limit + 1)
        page = [text(m) for m in members[:limit]]
        return ExecutionPage(page, page[-1] if len(members) > limit else None)

    async def _range_across(self, keys: list[str], offset: int, limit: int) -> list[str]:
        """Entries `offset`..`offset + limit` of `keys` read as one list, key after key."""
        if limit == 0:
            return []
        pipe = self._client.pipeline()
        for key in keys:
            pipe.execute_command("ZCARD", key)
        sizes = await pipe.run(raise_on_error=True)
        pipe = self._client.pipeline()
        remaining = limit
        for key, size in zip(keys, sizes, strict=True):
            if offset >= size:
                offset -= size
                continue
            take = min(remaining, size - offset)
            pipe.execute_command("ZRANGE", key, offset, offset + take - 1)
            remaining -= take
            offset = 0
            if remaining == 0:
                break
        ranges = await pipe.run(raise_on_error=True)
        return [text(m) for members in ranges for m in members]

    async def change_priority(self, execution_id: str, new_priority: int) -> None:
        eid = ExecutionId.parse(execution_id)
        await scheduling_fns.change_priority(self.library, eid, new_priority)

    async def replay_execution(self, execution_id: str, *, requested_by: str = "operator",
                               reason: str = "") -> str:
        """Runs a terminal execution again; returns its new public_state."""
        eid = ExecutionId.parse(execution_id)
        return await execution_fns.replay_execution(
            self.library, eid, requested_by=requested_by, reason=reason)
