"""Routes of the flows area: create, members (add or create-and-add), edges (stage,
apply), a child's join policy, cancel (background or `?wait=true`), and the reads the
reference lacks (`GET /v1/flows/{id}`, `GET /v1/flows/{id}/members`)."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from ff.core.flow_records import (
    AddExecutionToFlowArgs,
    AddExecutionToFlowResult,
    ApplyDependencyToChildArgs,
    ApplyDependencyToChildResult,
    CancelFlowArgs,
    CancelFlowResult,
    CreateFlowArgs,
    CreateFlowResult,
    EdgeGroupPolicyArgs,
    EdgeGroupPolicyResult,
    FlowInfo,
    FlowMembers,
    StageDependencyEdgeArgs,
    StageDependencyEdgeResult,
)
from ff.http._codec import decode_json, query_str
from ff.http._message import ApiError, Request, Response, json_response
from ff.http._router import BODY_LIMIT_CONTROL, BODY_LIMIT_LARGE
from ff.server import Server

from ._common import AddRoute

T = TypeVar("T", bound=msgspec.Struct)
WAIT_VALUES = {"true": True, "1": True, "false": False, "0": False, "": False}


def _body(request: Request, type_: type[T]) -> T:
    """An optional body: none at all means every field takes its default."""
    return decode_json(request, type_) if request.body.strip() else type_()


class _Handlers:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def create_flow(self, request: Request) -> Response:
        args = _body(request, CreateFlowArgs)
        result = await self.server.create_flow(args)
        return json_response(201 if result.Created else 200, result)

    async def add_member(self, request: Request) -> Response:
        args = decode_json(request, AddExecutionToFlowArgs)
        result = await self.server.add_execution_to_flow(request.path_params["id"], args)
        return json_response(201 if result.Added else 200, result)

    async def stage_edge(self, request: Request) -> Response:
        args = decode_json(request, StageDependencyEdgeArgs)
        result = await self.server.stage_dependency_edge(request.path_params["id"], args)
        return json_response(201, result)

    async def apply_edge(self, request: Request) -> Response:
        args = decode_json(request, ApplyDependencyToChildArgs)
        result = await self.server.apply_dependency_to_child(request.path_params["id"], args)
        return json_response(200, "AlreadyApplied" if result.applied_again else result)

    async def set_edge_group(self, request: Request) -> Response:
        args = decode_json(request, EdgeGroupPolicyArgs)
        result = await self.server.set_edge_group_policy(
            request.path_params["id"], request.path_params["execution_id"], args)
        return json_response(200, "AlreadySet" if result.already_set else result)

    async def cancel(self, request: Request) -> Response:
        wait = WAIT_VALUES.get((query_str(request, "wait") or "").lower())
        if wait is None:
            raise ApiError(400, "wait must be true, false, 1 or 0", kind="invalid_query")
        args = _body(request, CancelFlowArgs)
        result = await self.server.cancel_flow(request.path_params["id"], args, wait=wait)
        return json_response(200, result)

    async def get_flow(self, request: Request) -> Response:
        return json_response(200, await self.server.get_flow(request.path_params["id"]))

    async def members(self, request: Request) -> Response:
        return json_response(200, await self.server.list_flow_members(request.path_params["id"]))


def register(add: AddRoute, server: Server) -> None:
    h = _Handlers(server)
    flow = "/v1/flows/{id}"
    add("POST", "/v1/flows", h.create_flow, body_limit=BODY_LIMIT_CONTROL,
        request_type=CreateFlowArgs, response_type=CreateFlowResult, response_status=201,
        summary="Create a flow (200 with AlreadySatisfied for an existing id)")
    add("GET", flow, h.get_flow, response_type=FlowInfo,
        summary="Read a flow and its members counted per public state")
    add("GET", f"{flow}/members", h.members, response_type=FlowMembers,
        summary="List a flow's members with their incoming edges")
    add("POST", f"{flow}/members", h.add_member, body_limit=BODY_LIMIT_LARGE,
        request_type=AddExecutionToFlowArgs, response_type=AddExecutionToFlowResult,
        response_status=201,
        summary="Add an execution to a flow, or create it on the flow's partition and add it")
    add("PUT", f"{flow}/members/{{execution_id}}/edge-group", h.set_edge_group,
        body_limit=BODY_LIMIT_CONTROL, request_type=EdgeGroupPolicyArgs,
        response_type=EdgeGroupPolicyResult,
        summary="Set how a child joins its incoming edges (before its first applied edge)")
    add("POST", f"{flow}/edges", h.stage_edge, body_limit=BODY_LIMIT_CONTROL,
        request_type=StageDependencyEdgeArgs, response_type=StageDependencyEdgeResult,
        response_status=201, summary="Stage a dependency edge")
    add("POST", f"{flow}/edges/apply", h.apply_edge, body_limit=BODY_LIMIT_CONTROL,
        request_type=ApplyDependencyToChildArgs, response_type=ApplyDependencyToChildResult,
        summary="Apply a staged edge to its child")
    add("POST", f"{flow}/cancel", h.cancel, body_limit=BODY_LIMIT_CONTROL,
        request_type=CancelFlowArgs, response_type=CancelFlowResult,
        summary="Cancel a flow (?wait=true cancels the members before answering)")
