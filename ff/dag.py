"""A small DAG builder over `ApiClient`: declare nodes and edges, then submit the flow.

    flow = Flow("etl")
    extract = flow.node("extract", payload=b"s3://bucket/day")
    parts = [flow.node("transform", payload=str(i)) for i in range(3)]
    load = flow.node("load")
    for part in parts:
        extract >> part
        flow.edge(part, load, data=True)        # the upstream result becomes load's input
    flow.join(load, "quorum", k=2, on_satisfied="cancel_remaining")
    submitted = await flow.submit(api)          # flow, members, edges, applied
    await api.get_execution_state(load.execution_id)

`submit` creates the flow, then every member on the flow's partition (members with an
incoming edge are held in waiting_children until their last edge is applied, so nothing
runs before its edges exist), sets the join policies, and stages every edge (threading the
graph revision), applying it in the same request.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ff.client import ApiClient
from ff.core.flow_records import (
    AddExecutionToFlowArgs,
    CreateFlowArgs,
    EdgeGroupPolicyArgs,
    StageDependencyEdgeArgs,
)
from ff.core.records import CreateExecutionArgs

DATA_REF = "result"


class Node:
    """One execution of the flow; `a >> b` adds the edge a -> b and returns b."""

    def __init__(self, flow: Flow, execution: CreateExecutionArgs) -> None:
        self.flow = flow
        self.execution = execution
        self.execution_id: str | None = None

    @property
    def kind(self) -> str:
        return self.execution.execution_kind

    def __rshift__(self, other: Node) -> Node:
        self.flow.edge(self, other)
        return other

    def __repr__(self) -> str:
        return f"Node({self.kind!r}, {self.execution_id or 'unsubmitted'})"


class Edge(msgspec.Struct, frozen=True):
    upstream: int
    downstream: int
    data: bool


class Submitted(msgspec.Struct, frozen=True):
    flow_id: str
    execution_ids: list[str]
    graph_revision: int


class Flow:
    def __init__(self, kind: str = "", *, namespace: str = "default", lane: str = "default",
                 flow_id: str | None = None) -> None:
        self.kind = kind
        self.namespace = namespace
        self.lane = lane
        self.flow_id = flow_id
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.joins: dict[int, EdgeGroupPolicyArgs] = {}

    def node(self, kind: str, payload: bytes | str | None = None, **fields: Any) -> Node:
        """A member; `fields` are those of `CreateExecutionArgs` (policy, priority, ...)."""
        fields.setdefault("namespace", self.namespace)
        fields.setdefault("lane_id", self.lane)
        data = list(payload) if isinstance(payload, bytes) else payload
        node = Node(self, CreateExecutionArgs(execution_kind=kind, input_payload=data, **fields))
        self.nodes.append(node)
        return node

    def _index(self, node: Node) -> int:
        if node.flow is not self:
            raise ValueError(f"{node!r} belongs to another flow")
        return next(i for i, n in enumerate(self.nodes) if n is node)

    def edge(self, upstream: Node, downstream: Node, *, data: bool = False) -> None:
        """downstream runs after upstream; with `data`, upstream's result is its input."""
        self.edges.append(Edge(self._index(upstream), self._index(downstream), data))

    def join(self, node: Node, policy: str, *, k: int | None = None,
             on_satisfied: str | None = None) -> None:
        """How `node` joins its incoming edges: all_of (default), any_of or quorum k."""
        self.joins[self._index(node)] = msgspec.convert(
            {"policy": policy, "k": k, "on_satisfied": on_satisfied}, EdgeGroupPolicyArgs)

    async def submit(self, api: ApiClient) -> Submitted:
        created = await api.create_flow(CreateFlowArgs(
            flow_id=self.flow_id, flow_kind=self.kind, namespace=self.namespace))
        body = created.Created or created.AlreadySatisfied
        assert body is not None
        self.flow_id = flow_id = body.flow_id
        fed = {e.downstream for e in self.edges}
        for i, node in enumerate(self.nodes):
            added = await api.add_execution_to_flow(flow_id, AddExecutionToFlowArgs(
                execution=node.execution, hold=i in fed))
            node.execution_id = added.execution_id
        revision = len(self.nodes)
        for i, join in self.joins.items():
            await api.set_edge_group_policy(flow_id, self._id(i), join)
        last_into = {e.downstream: n for n, e in enumerate(self.edges)}
        for n, edge in enumerate(self.edges):
            answer = await api.stage_dependency_edge(flow_id, StageDependencyEdgeArgs(
                upstream_execution_id=self._id(edge.upstream),
                downstream_execution_id=self._id(edge.downstream),
                expected_graph_revision=revision,
                data_passing_ref=DATA_REF if edge.data else None,
                apply=True, release_hold=last_into[edge.downstream] == n))
            assert answer.Staged is not None
            revision = answer.Staged.new_graph_revision
        return Submitted(flow_id, [self._id(i) for i in range(len(self.nodes))], revision)

    def _id(self, index: int) -> str:
        eid = self.nodes[index].execution_id
        assert eid is not None
        return eid
