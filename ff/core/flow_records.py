"""Flow records that cross a boundary (Server API, HTTP, client), as msgspec Structs.

Field names follow the reference wire format. Ids and `now` are optional everywhere: the
server mints flow, execution and edge ids (members on the flow's partition) and uses its
own clock. Results that the reference sends externally tagged (`{"Cancelled": {...}}`)
are one Struct with one optional field per variant, exactly one of them set.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ff.core.millis import Millis
from ff.core.policy import BudgetIds
from ff.core.records import CreateExecutionArgs

CancellationPolicy = Literal["cancel_all", "cancel_pending", "flow_only"]
JoinPolicy = Literal["all_of", "any_of", "quorum"]
OnSatisfied = Literal["let_run", "cancel_remaining"]


class CreateFlowArgs(msgspec.Struct, kw_only=True):
    """`budget_ids` (ours): budgets every member added to the flow carries."""

    flow_id: str | None = None
    flow_kind: str = ""
    namespace: str = "default"
    now: Millis | None = None
    budget_ids: BudgetIds | None = None


class AddExecutionToFlowArgs(msgspec.Struct, kw_only=True):
    """Add an existing execution (`execution_id`), or create one on the flow's partition
    and add it in the same request (`execution`). `hold` keeps a waiting member in
    waiting_children until an applied edge releases it (so it cannot run before its
    edges exist)."""

    flow_id: str | None = None
    execution_id: str | None = None
    execution: CreateExecutionArgs | None = None
    hold: bool = False
    now: Millis | None = None


class StageDependencyEdgeArgs(msgspec.Struct, kw_only=True):
    """`apply` (ours) also applies the staged edge to its child in the same request,
    with `release_hold` as in `ApplyDependencyToChildArgs`."""

    upstream_execution_id: str
    downstream_execution_id: str
    expected_graph_revision: int
    flow_id: str | None = None
    edge_id: str | None = None
    dependency_kind: str = "success_only"
    data_passing_ref: str | None = None
    apply: bool = False
    release_hold: bool = True
    now: Millis | None = None


class ApplyDependencyToChildArgs(msgspec.Struct, kw_only=True):
    """`release_hold` (ours) lifts the hold of `AddExecutionToFlowArgs.hold`; a builder
    applying several edges to one child releases it with the last one."""

    edge_id: str
    downstream_execution_id: str
    upstream_execution_id: str
    graph_revision: int
    flow_id: str | None = None
    dependency_kind: str = "success_only"
    data_passing_ref: str | None = None
    release_hold: bool = True
    now: Millis | None = None


class EdgeGroupPolicyArgs(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The join of a child's incoming edges; `k` only (and required) for quorum."""

    policy: JoinPolicy
    k: int | None = None
    on_satisfied: OnSatisfied | None = None


class CancelFlowArgs(msgspec.Struct, kw_only=True):
    flow_id: str | None = None
    reason: str = ""
    cancellation_policy: CancellationPolicy = "cancel_all"
    now: Millis | None = None


class FlowIdBody(msgspec.Struct):
    flow_id: str


class CreateFlowResult(msgspec.Struct, omit_defaults=True):
    """201 `{"Created": {"flow_id"}}` / 200 `{"AlreadySatisfied": {"flow_id"}}`."""

    Created: FlowIdBody | None = None
    AlreadySatisfied: FlowIdBody | None = None


class AddedBody(msgspec.Struct):
    execution_id: str
    new_node_count: int


class AlreadyMemberBody(msgspec.Struct):
    execution_id: str
    node_count: int


class AddExecutionToFlowResult(msgspec.Struct, omit_defaults=True):
    """201 `{"Added": ...}` / 200 `{"AlreadyMember": ...}`."""

    Added: AddedBody | None = None
    AlreadyMember: AlreadyMemberBody | None = None

    @property
    def execution_id(self) -> str:
        body = self.Added or self.AlreadyMember
        assert body is not None
        return body.execution_id


class StagedBody(msgspec.Struct):
    edge_id: str
    new_graph_revision: int


class StageDependencyEdgeResult(msgspec.Struct, omit_defaults=True):
    Staged: StagedBody | None = None


class AppliedBody(msgspec.Struct):
    unsatisfied_count: int


class ApplyDependencyToChildResult(msgspec.Struct, omit_defaults=True):
    """200 `{"Applied": {"unsatisfied_count"}}`, or the bare string `"AlreadyApplied"`
    on the wire (`applied_again` here)."""

    Applied: AppliedBody | None = None
    applied_again: bool = False


class EdgeGroupBody(msgspec.Struct):
    policy: str
    k: int
    on_satisfied: str


class EdgeGroupPolicyResult(msgspec.Struct, omit_defaults=True):
    """200 `{"Set": {...}}`, or the bare string `"AlreadySet"` on the wire."""

    Set: EdgeGroupBody | None = None
    already_set: bool = False


class CancelledFlowBody(msgspec.Struct):
    cancellation_policy: str
    member_execution_ids: list[str]


class PartiallyCancelledBody(msgspec.Struct):
    cancellation_policy: str
    member_execution_ids: list[str]
    failed_member_execution_ids: list[str]


class CancellationScheduledBody(msgspec.Struct):
    cancellation_policy: str
    member_count: int
    member_execution_ids: list[str]


class CancelFlowResult(msgspec.Struct, omit_defaults=True):
    Cancelled: CancelledFlowBody | None = None
    PartiallyCancelled: PartiallyCancelledBody | None = None
    CancellationScheduled: CancellationScheduledBody | None = None


class FlowInfo(msgspec.Struct, frozen=True):
    """`GET /v1/flows/{id}` (ours): the flow record and its members counted per public
    state."""

    flow_id: str
    flow_kind: str
    namespace: str
    public_flow_state: str
    graph_revision: int
    node_count: int
    edge_count: int
    created_at: str
    counts: dict[str, int]
    cancelled_at: str | None = None
    cancel_reason: str | None = None
    cancellation_policy: str | None = None


class FlowEdge(msgspec.Struct, frozen=True):
    """An edge as the member it leads into sees it: `state` is unsatisfied, satisfied or
    impossible once applied, `staged` before."""

    edge_id: str
    upstream_execution_id: str
    downstream_execution_id: str
    dependency_kind: str
    data_passing_ref: str | None
    state: str


class FlowMember(msgspec.Struct, frozen=True):
    execution_id: str
    execution_kind: str
    public_state: str
    edges: list[FlowEdge]


class FlowMembers(msgspec.Struct, frozen=True):
    flow_id: str
    members: list[FlowMember]
