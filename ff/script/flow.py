"""Typed wrappers for the flow functions (lua/flow.lua).

Flows and their members share one `{fp:N}` tag, so every call here names keys of that one
partition: the flow's keys are built from the flow id and the tag of the partition it
hashes to.
"""

from __future__ import annotations

import msgspec

from ff.core.keys import ExecKeys, FlowKeys, IndexKeys
from ff.script.library import FunctionLibrary


class MemberAdded(msgspec.Struct, frozen=True):
    execution_id: str
    node_count: int


class EdgeStaged(msgspec.Struct, frozen=True):
    edge_id: str
    new_graph_revision: int


class EdgeGroupPolicy(msgspec.Struct, frozen=True):
    outcome: str
    policy: str
    on_satisfied: str
    k: int


class Resolution(msgspec.Struct, frozen=True):
    """How many edges a call settled (`unsatisfied_count` for apply), the downstream
    executions whose upstream siblings are owed a cancel (cancel_remaining groups), and
    the lanes of the children it made eligible (on the flow's partition)."""

    count: int
    cancel_groups: list[str]
    promoted_lanes: list[str] = []


class FlowCancelled(msgspec.Struct, frozen=True):
    policy: str
    members: list[str]
    targets: list[str]


class BatchCancelled(msgspec.Struct, frozen=True):
    cancelled: int
    still_owed: int


class SiblingsCancelled(msgspec.Struct, frozen=True):
    cancelled: int
    reason: str


class GroupAction(msgspec.Struct, frozen=True):
    action: str
    detail: str = ""


async def create_flow(lib: FunctionLibrary, keys: FlowKeys, *, flow_kind: str,
                      namespace: str, budget_ids: list[str] | None = None) -> bool:
    """True if this call created the flow (False: it existed)."""
    reply = await lib.call("ff_create_flow", (keys.core, IndexKeys(keys.tag).flow_index),
                           (keys.flow_id, flow_kind, namespace, ",".join(budget_ids or ())))
    return reply.status == "OK"


async def add_execution_to_flow(lib: FunctionLibrary, keys: FlowKeys, eid: str, *,
                                hold: bool = False) -> tuple[bool, MemberAdded]:
    """(whether this call added it, the member and the flow's node count)."""
    reply = await lib.call("ff_add_execution_to_flow", (keys.core, ExecKeys(eid).core),
                           (keys.flow_id, eid, "1" if hold else ""))
    return reply.status == "OK", reply.into(MemberAdded)


async def stage_dependency_edge(lib: FunctionLibrary, keys: FlowKeys, *, edge_id: str,
                                upstream: str, downstream: str, dependency_kind: str,
                                data_passing_ref: str, expected_graph_revision: int
                                ) -> EdgeStaged:
    reply = await lib.call("ff_stage_dependency_edge", (keys.core,), (
        keys.flow_id, edge_id, upstream, downstream, dependency_kind, data_passing_ref,
        expected_graph_revision))
    return reply.into(EdgeStaged)


async def set_edge_group_policy(lib: FunctionLibrary, keys: FlowKeys, downstream: str, *,
                                policy: str, on_satisfied: str, k: int) -> EdgeGroupPolicy:
    reply = await lib.call("ff_set_edge_group_policy", (keys.core,),
                           (keys.flow_id, downstream, policy, on_satisfied, k))
    return reply.into(EdgeGroupPolicy)


async def apply_dependency_to_child(lib: FunctionLibrary, keys: FlowKeys, child: str, *,
                                    edge_id: str, upstream: str, graph_revision: int,
                                    release_hold: bool) -> tuple[bool, Resolution]:
    """(whether this call applied the edge, unsatisfied count and cancel groups)."""
    reply = await lib.call("ff_apply_dependency_to_child", (ExecKeys(child).core,), (
        keys.flow_id, child, edge_id, upstream, graph_revision, "1" if release_hold else ""))
    return reply.status == "OK", reply.into(Resolution)


async def resolve_completion(lib: FunctionLibrary, flow_id: str, upstream: str) -> Resolution:
    reply = await lib.call("ff_resolve_completion", (ExecKeys(upstream).core,),
                           (flow_id, upstream))
    return reply.into(Resolution)


async def resolve_dependency(lib: FunctionLibrary, child: str) -> Resolution:
    reply = await lib.call("ff_resolve_dependency", (ExecKeys(child).core,), (child,))
    return reply.into(Resolution)


async def cancel_flow(lib: FunctionLibrary, keys: FlowKeys, *, reason: str, policy: str,
                      grace_ms: int) -> tuple[bool, FlowCancelled]:
    """(whether the flow was already cancelled, the policy in force, every member and the
    members owed a cancel)."""
    reply = await lib.call("ff_cancel_flow", (keys.core, IndexKeys(keys.tag).cancel_backlog),
                           (keys.flow_id, reason, policy, grace_ms))
    return reply.status != "OK", reply.into(FlowCancelled)


async def ack_cancel_member(lib: FunctionLibrary, keys: FlowKeys, eid: str) -> int:
    """Returns how many members are still owed a cancel."""
    reply = await lib.call("ff_ack_cancel_member",
                           (keys.pending_cancels, IndexKeys(keys.tag).cancel_backlog),
                           (eid, keys.flow_id))
    return int(reply.first())


async def cancel_flow_members(lib: FunctionLibrary, keys: FlowKeys, reason: str,
                              members: list[str]) -> BatchCancelled:
    """Cancels a batch (at most 1000) of the members the flow is owed and acks them."""
    reply = await lib.call("ff_cancel_flow_members",
                           (keys.pending_cancels, IndexKeys(keys.tag).cancel_backlog),
                           (keys.flow_id, reason, *members))
    return reply.into(BatchCancelled)


async def cancel_sibling_group(lib: FunctionLibrary, keys: FlowKeys,
                               downstream: str) -> SiblingsCancelled:
    """Cancels the siblings a fired cancel_remaining group lists and drains the group."""
    reply = await lib.call(
        "ff_cancel_sibling_group",
        (IndexKeys(keys.tag).pending_cancel_groups, keys.edge_group(downstream)),
        (keys.flow_id, downstream))
    return reply.into(SiblingsCancelled)


async def reconcile_sibling_cancel_group(lib: FunctionLibrary, keys: FlowKeys,
                                         downstream: str) -> GroupAction:
    reply = await lib.call(
        "ff_reconcile_sibling_cancel_group",
        (IndexKeys(keys.tag).pending_cancel_groups, keys.edge_group(downstream)),
        (keys.flow_id, downstream))
    return reply.into(GroupAction)


async def set_flow_tags(lib: FunctionLibrary, keys: FlowKeys, tags: dict[str, str]) -> int:
    flat = [item for pair in tags.items() for item in pair]
    reply = await lib.call("ff_set_flow_tags", (keys.core, keys.tags), flat)
    return int(reply.first())
