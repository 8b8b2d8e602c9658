"""Flows: the Server methods of this area land here (create_flow, add_execution_to_flow,
stage_dependency_edge, apply_dependency_to_child, cancel_flow, cancel_flow_wait)."""

from __future__ import annotations

from ff.api._parts import ServerParts


class FlowsApi(ServerParts):
    """No methods yet."""
