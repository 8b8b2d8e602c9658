"""Flows: create, add members (or create them on the flow's partition), stage and apply
edges, join policies, cancel (background dispatch or wait), read a flow and its members,
flow tags.

The background dispatch of cancel_flow runs in the server's dispatch nursery; shutdown
drains it for up to DISPATCH_DRAIN_S, then aborts it. Members it did not reach stay in
the flow's durable backlog and the cancel_reconciler cancels them (after a restart too).
"""

from __future__ import annotations

import logging

import msgspec
import trio

from ff.admission import require_attachments
from ff.api.executions import ExecutionsApi
from ff.core.errors import NotFoundError, ValidationError, error_for_code
from ff.core.flow_records import (
    AddedBody,
    AddExecutionToFlowArgs,
    AddExecutionToFlowResult,
    AlreadyMemberBody,
    AppliedBody,
    ApplyDependencyToChildArgs,
    ApplyDependencyToChildResult,
    CancelFlowArgs,
    CancelFlowResult,
    CancellationScheduledBody,
    CancelledFlowBody,
    CreateFlowArgs,
    CreateFlowResult,
    EdgeGroupBody,
    EdgeGroupPolicyArgs,
    EdgeGroupPolicyResult,
    FlowEdge,
    FlowIdBody,
    FlowInfo,
    FlowMember,
    FlowMembers,
    PartiallyCancelledBody,
    StagedBody,
    StageDependencyEdgeArgs,
    StageDependencyEdgeResult,
)
from ff.core.ids import ExecutionId, new_uuid, parse_uuid
from ff.core.keys import ExecKeys, FlowKeys
from ff.core.millis import MAX_MILLIS
from ff.core.partitions import flow_tag
from ff.core.policy import ExecutionPolicy
from ff.core.records import CreateExecutionArgs
from ff.engine.flows import cancel_flow_members, settle
from ff.script import execution as execution_fns
from ff.script import flow as flow_fns
from ff.script.library import text

log = logging.getLogger("ff.flows")

DISPATCH_DRAIN_S = 15.0
MEMBER_READ_CHUNK = 500


def with_budgets(spec: CreateExecutionArgs, budget_ids: list[str]) -> CreateExecutionArgs:
    """A member's spec carrying the flow's budgets too, so it is never claimable without
    them (adding it to the flow writes the same union)."""
    if not budget_ids:
        return spec
    policy = spec.policy or ExecutionPolicy()
    merged = list(dict.fromkeys([*(policy.budget_ids or ()), *budget_ids]))
    return msgspec.structs.replace(
        spec, policy=msgspec.structs.replace(policy, budget_ids=merged))


def _same(path_value: str, body_value: str | None, what: str) -> None:
    if body_value is not None and body_value != path_value:
        raise ValidationError("invalid_input", f"{what} in the body does not match the path")


class FlowsApi(ExecutionsApi):
    """Builds on the executions area: a member can be created with the flow."""

    dispatch_nursery: trio.Nursery | None = None

    def _flow_keys(self, flow_id: str) -> FlowKeys:
        fid = parse_uuid(flow_id, "flow_id")
        return FlowKeys(fid, flow_tag(self._config.partitions.flow_partition(fid)))

    def _member_id(self, keys: FlowKeys, value: str) -> ExecutionId:
        eid = ExecutionId.parse(value)
        if eid.tag != keys.tag:
            raise ValidationError(
                "invalid_input", f"add_execution_to_flow: execution_id's partition {eid.tag} "
                f"!= flow_id's partition {keys.tag}: mint it for the flow")
        return eid

    async def create_flow(self, args: CreateFlowArgs) -> CreateFlowResult:
        keys = self._flow_keys(args.flow_id or new_uuid())
        budgets = list(dict.fromkeys(parse_uuid(b, "budget_ids[]") for b in args.budget_ids or ()))
        await require_attachments(self._client, self._config.partitions, budgets, None)
        created = await flow_fns.create_flow(self.library, keys, flow_kind=args.flow_kind,
                                             namespace=args.namespace, budget_ids=budgets)
        body = FlowIdBody(keys.flow_id)
        return CreateFlowResult(Created=body) if created else CreateFlowResult(
            AlreadySatisfied=body)

    async def add_execution_to_flow(self, flow_id: str, args: AddExecutionToFlowArgs
                                    ) -> AddExecutionToFlowResult:
        """Adds `execution_id`, or creates `execution` on the flow's partition first. A
        created execution the flow then refuses (cancelled meanwhile) is cancelled."""
        keys = self._flow_keys(flow_id)
        _same(keys.flow_id, args.flow_id and parse_uuid(args.flow_id, "flow_id"), "flow_id")
        if (args.execution_id is None) == (args.execution is None):
            raise ValidationError("invalid_input", "give exactly one of execution_id, execution")
        created = None
        if args.execution is not None:
            flow_budgets = await self._require_open_flow(keys)
            spec = with_budgets(args.execution, flow_budgets)
            eid = self._member_id(keys, spec.execution_id) if spec.execution_id else (
                ExecutionId.for_flow(keys.flow_id, self._config.partitions))
            if args.hold:  # not claimable between its creation and the hold
                spec = msgspec.structs.replace(spec, delay_until=MAX_MILLIS)
            created = await self.create_execution(msgspec.structs.replace(
                spec, execution_id=eid, partition_id=eid.partition))
        else:
            eid = self._member_id(keys, args.execution_id or "")
        try:
            fresh, added = await flow_fns.add_execution_to_flow(self.library, keys, eid,
                                                                hold=args.hold)
        except Exception:
            if created is not None and not created.duplicate:
                with trio.CancelScope(shield=True):
                    await execution_fns.cancel_execution(
                        self.library, eid, reason="flow refused the member",
                        source="operator_override")
            raise
        if fresh:
            return AddExecutionToFlowResult(Added=AddedBody(eid, added.node_count))
        return AddExecutionToFlowResult(AlreadyMember=AlreadyMemberBody(eid, added.node_count))

    async def _require_open_flow(self, keys: FlowKeys) -> list[str]:
        """The open flow's budget ids."""
        state, budgets = await self._client.execute(
            "HMGET", keys.core, "public_flow_state", "budget_ids")
        if state is None:
            raise NotFoundError("flow_not_found", keys.flow_id)
        if text(state) != "open":
            raise error_for_code("flow_already_terminal", text(state))
        return [b for b in text(budgets or b"").split(",") if b]

    async def stage_dependency_edge(self, flow_id: str, args: StageDependencyEdgeArgs
                                    ) -> StageDependencyEdgeResult:
        keys = self._flow_keys(flow_id)
        _same(keys.flow_id, args.flow_id and parse_uuid(args.flow_id, "flow_id"), "flow_id")
        up = self._member_id(keys, args.upstream_execution_id)
        down = self._member_id(keys, args.downstream_execution_id)
        edge_id = parse_uuid(args.edge_id, "edge_id") if args.edge_id else new_uuid()
        if args.expected_graph_revision < 0:
            raise ValidationError("invalid_input", "expected_graph_revision must be >= 0")
        staged = await flow_fns.stage_dependency_edge(
            self.library, keys, edge_id=edge_id, upstream=up, downstream=down,
            dependency_kind=args.dependency_kind or "success_only",
            data_passing_ref=args.data_passing_ref or "",
            expected_graph_revision=args.expected_graph_revision)
        if args.apply:
            await self.apply_dependency_to_child(keys.flow_id, ApplyDependencyToChildArgs(
                edge_id=staged.edge_id, upstream_execution_id=up, downstream_execution_id=down,
                graph_revision=staged.new_graph_revision, release_hold=args.release_hold))
        return StageDependencyEdgeResult(Staged=StagedBody(staged.edge_id,
                                                           staged.new_graph_revision))

    async def apply_dependency_to_child(self, flow_id: str, args: ApplyDependencyToChildArgs
                                        ) -> ApplyDependencyToChildResult:
        keys = self._flow_keys(flow_id)
        _same(keys.flow_id, args.flow_id and parse_uuid(args.flow_id, "flow_id"), "flow_id")
        child = self._member_id(keys, args.downstream_execution_id)
        up = self._member_id(keys, args.upstream_execution_id)
        applied, resolution = await flow_fns.apply_dependency_to_child(
            self.library, keys, child, edge_id=parse_uuid(args.edge_id, "edge_id"),
            upstream=up, graph_revision=args.graph_revision, release_hold=args.release_hold)
        await settle(self.library, self._config.partitions, child, resolution, keys.flow_id)
        if not applied:
            return ApplyDependencyToChildResult(applied_again=True)
        return ApplyDependencyToChildResult(Applied=AppliedBody(resolution.count))

    async def set_edge_group_policy(self, flow_id: str, execution_id: str,
                                    args: EdgeGroupPolicyArgs) -> EdgeGroupPolicyResult:
        keys = self._flow_keys(flow_id)
        child = self._member_id(keys, execution_id)
        if args.policy == "quorum":
            if args.k is None or args.k < 1:
                raise ValidationError("invalid_input", "quorum needs k >= 1")
        elif args.k is not None:
            raise ValidationError("invalid_input", "k applies to quorum only")
        if args.policy == "all_of" and args.on_satisfied == "cancel_remaining":
            raise ValidationError("invalid_input", "all_of has no remaining siblings to cancel")
        result = await flow_fns.set_edge_group_policy(
            self.library, keys, child, policy=args.policy,
            on_satisfied=args.on_satisfied or "let_run", k=args.k or 1)
        if result.outcome == "already_set":
            return EdgeGroupPolicyResult(already_set=True)
        return EdgeGroupPolicyResult(Set=EdgeGroupBody(result.policy, result.k,
                                                       result.on_satisfied))

    async def cancel_flow(self, flow_id: str, args: CancelFlowArgs, *,
                          wait: bool = False) -> CancelFlowResult:
        """Flips the flow to cancelled and cancels the members its policy names:
        in the background (`CancellationScheduled`) or, with `wait`, before answering
        (`Cancelled` / `PartiallyCancelled`). A repeat is an idempotent `Cancelled`."""
        keys = self._flow_keys(flow_id)
        _same(keys.flow_id, args.flow_id and parse_uuid(args.flow_id, "flow_id"), "flow_id")
        repeated, header = await flow_fns.cancel_flow(
            self.library, keys, reason=args.reason, policy=args.cancellation_policy,
            grace_ms=self._config.cancel_flow_grace_ms)
        done = CancelFlowResult(Cancelled=CancelledFlowBody(header.policy, header.members))
        if repeated or not header.targets:
            return done
        reason = args.reason or "flow_cancelled"
        if wait:
            failed = await cancel_flow_members(self.library, keys, header.targets, reason)
            if failed:
                return CancelFlowResult(PartiallyCancelled=PartiallyCancelledBody(
                    header.policy, header.members, sorted(failed)))
            return done
        nursery = self.dispatch_nursery
        if nursery is None:
            raise RuntimeError("cancel_flow dispatch needs a running server")
        nursery.start_soon(self._dispatch_cancel, keys, header.targets, reason)
        return CancelFlowResult(CancellationScheduled=CancellationScheduledBody(
            header.policy, len(header.members), header.members))

    async def cancel_flow_wait(self, flow_id: str, args: CancelFlowArgs) -> CancelFlowResult:
        return await self.cancel_flow(flow_id, args, wait=True)

    async def _dispatch_cancel(self, keys: FlowKeys, targets: list[str], reason: str) -> None:
        failed = await cancel_flow_members(self.library, keys, targets, reason)
        if failed:
            log.warning("cancel_flow(async): %d member(s) left for the cancel_reconciler",
                        len(failed), extra={"flow_id": keys.flow_id})

    async def drain_dispatch(self) -> None:
        """Lets background cancel dispatch finish for up to DISPATCH_DRAIN_S, then aborts
        it (the cancel_reconciler finishes the members it did not reach)."""
        nursery = self.dispatch_nursery
        if nursery is None:
            return
        with trio.move_on_after(DISPATCH_DRAIN_S) as scope:
            while nursery.child_tasks:
                await trio.sleep(0.05)
        if scope.cancelled_caught:
            log.warning("cancel_flow dispatch still running after %.0f s: aborted",
                        DISPATCH_DRAIN_S)
        nursery.cancel_scope.cancel()

    async def get_flow(self, flow_id: str) -> FlowInfo:
        keys = self._flow_keys(flow_id)
        raw = await self._client.execute("HGETALL", keys.core)
        if not raw:
            raise NotFoundError("flow_not_found", f"flow not found: {keys.flow_id}")
        core = {text(k): text(v) for k, v in raw.items()}
        counts: dict[str, int] = {}
        async for _, state in self._member_states(keys, "public_state"):
            counts[state[0]] = counts.get(state[0], 0) + 1
        return FlowInfo(
            flow_id=keys.flow_id, flow_kind=core.get("flow_kind", ""),
            namespace=core.get("namespace", ""),
            public_flow_state=core.get("public_flow_state", ""),
            graph_revision=int(core.get("graph_revision") or 0),
            node_count=int(core.get("node_count") or 0),
            edge_count=int(core.get("edge_count") or 0), created_at=core.get("created_at", ""),
            counts=counts, cancelled_at=core.get("cancelled_at") or None,
            cancel_reason=core.get("cancel_reason") or None,
            cancellation_policy=core.get("cancellation_policy") or None)

    async def _member_states(self, keys: FlowKeys, *fields: str):
        """(member id, [field values]) for every member, read in pipelined chunks."""
        members = sorted(text(m) for m in await self._client.execute("SMEMBERS", keys.members))
        for start in range(0, len(members), MEMBER_READ_CHUNK):
            chunk = members[start:start + MEMBER_READ_CHUNK]
            pipe = self._client.pipeline()
            for eid in chunk:
                pipe.execute_command("HMGET", ExecKeys(eid).core, *fields)
            for eid, values in zip(chunk, await pipe.run(raise_on_error=True), strict=True):
                yield eid, [text(v) for v in values]

    async def list_flow_members(self, flow_id: str) -> FlowMembers:
        keys = self._flow_keys(flow_id)
        if not await self._client.execute("EXISTS", keys.core):
            raise NotFoundError("flow_not_found", f"flow not found: {keys.flow_id}")
        members = []
        async for eid, (kind, state) in self._member_states(
                keys, "execution_kind", "public_state"):
            members.append(FlowMember(eid, kind, state, await self._incoming_edges(keys, eid)))
        return FlowMembers(keys.flow_id, members)

    async def _incoming_edges(self, keys: FlowKeys, eid: str) -> list[FlowEdge]:
        edge_ids = sorted(text(e) for e in await self._client.execute(
            "SMEMBERS", keys.incoming(eid)))
        if not edge_ids:
            return []
        pipe = self._client.pipeline()
        for edge in edge_ids:
            pipe.execute_command("HMGET", keys.edge(edge), "upstream_execution_id",
                                 "dependency_kind", "data_passing_ref")
            pipe.execute_command("HGET", ExecKeys(eid).dep(edge), "state")
        replies = await pipe.run(raise_on_error=True)
        edges = []
        for i, edge in enumerate(edge_ids):
            up, kind, ref = (text(v) for v in replies[2 * i])
            state = text(replies[2 * i + 1]) or "staged"
            edges.append(FlowEdge(edge, up, eid, kind, ref or None, state))
        return edges

    async def set_flow_tags(self, flow_id: str, tags: dict[str, str]) -> int:
        return await flow_fns.set_flow_tags(self.library, self._flow_keys(flow_id), tags)
