"""Routes of the executions area: create, read, list, cancel, priority, replay, revoke
and reclaim."""

from __future__ import annotations

import msgspec

from ff.api.executions import CREATE_BATCH_MAX
from ff.core.errors import FFError
from ff.core.records import (
    CancelExecutionArgs,
    CreateExecutionArgs,
    CreateResult,
    ExecutionInfo,
    ExecutionPage,
    ReclaimCapExceeded,
    ReclaimGrantArgs,
    ReclaimGranted,
    ReclaimNotReclaimable,
)
from ff.http._codec import decode_body, decode_json, query_int, query_str
from ff.http._message import ApiError, Request, Response, json_response, raw_response
from ff.http._router import BODY_LIMIT_BATCH, BODY_LIMIT_CONTROL, BODY_LIMIT_LARGE
from ff.http.errors import api_error_for
from ff.http.wire import (
    AlreadySatisfiedBody,
    BatchCreateItem,
    BatchCreateResponse,
    CancelledBody,
    CancelResponse,
    ChangedBody,
    CreatedBody,
    CreateResponse,
    DuplicateBody,
    ItemErrorBody,
    PriorityRequest,
    PriorityResponse,
    ReplayedBody,
    ReplayResponse,
    RevokedBody,
    RevokeResponse,
)
from ff.server import Server

from ._common import EXECUTIONS_CLAIMED, EXECUTIONS_COMPLETED, EXECUTIONS_CREATED, AddRoute

LIST_LIMIT_DEFAULT = 50


def _decode_create(body: bytes) -> CreateExecutionArgs:
    """A create body; a bad `policy` is the library's `invalid_policy_json`, not a shape error.

    msgspec validates the policy while decoding the body, so its error names the JSON path;
    one under `$.policy` is reported with the policy's own code.
    """
    try:
        return decode_body(body, CreateExecutionArgs)
    except ApiError as exc:
        if exc.kind == "invalid_body" and "`$.policy" in exc.error:
            detail = exc.error.removeprefix("invalid JSON: ")
            raise ApiError(400, f"invalid_policy_json: {detail}") from None
        raise


class _Handlers:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def list_executions(self, request: Request) -> Response:
        """Cursor form (`partition`, `cursor`, `limit`) or filter form (+ `lane`, `state`,
        `offset`); the two do not mix."""
        partition = query_int(request, "partition", required=True, minimum=0, maximum=65535)
        limit = query_int(request, "limit", LIST_LIMIT_DEFAULT, minimum=0)
        cursor = query_str(request, "cursor") or None
        lane = query_str(request, "lane") or None
        state = query_str(request, "state") or None
        offset = query_int(request, "offset", 0, minimum=0)
        if lane is None and (state is not None or "offset" in request.query):
            raise ApiError(400, "`state` and `offset` filter one lane: pass `lane` as well",
                           kind="invalid_query")
        if lane is not None and cursor is not None:
            raise ApiError(400, "`cursor` pages a whole partition; with `lane` use `offset`",
                           kind="invalid_query")
        page = await self.server.list_executions(
            partition, cursor=cursor, limit=limit, lane=lane, state=state, offset=offset)
        return json_response(200, page)

    async def create_execution(self, request: Request) -> Response:
        created = await self.server.create_execution(_decode_create(request.body))
        if created.duplicate:
            duplicate = DuplicateBody(created.execution_id, created.public_state)
            return json_response(200, CreateResponse(Duplicate=duplicate))
        EXECUTIONS_CREATED.inc()
        body = CreatedBody(created.execution_id, created.public_state)
        return json_response(201, CreateResponse(Created=body))

    async def create_executions(self, request: Request) -> Response:
        """A JSON array of create bodies (at most CREATE_BATCH_MAX); every item is decoded
        and created on its own, so a bad one is answered with its error and the rest
        are created."""
        items = decode_json(request, list[msgspec.Raw])
        if len(items) > CREATE_BATCH_MAX:
            raise ApiError(413, f"at most {CREATE_BATCH_MAX} executions per batch",
                           kind="batch_too_large")
        answers: list[BatchCreateItem | None] = [None] * len(items)
        valid: list[tuple[int, CreateExecutionArgs]] = []
        for i, raw in enumerate(items):
            try:
                valid.append((i, _decode_create(bytes(raw))))
            except ApiError as exc:
                answers[i] = BatchCreateItem(Error=ItemErrorBody(
                    exc.status, exc.error, exc.kind, exc.retryable))
        created = await self.server.create_executions([args for _, args in valid])
        for (i, _), outcome in zip(valid, created, strict=True):
            answers[i] = _batch_item(outcome)
        EXECUTIONS_CREATED.inc(sum(1 for a in answers if a is not None and a.Created))
        return json_response(200, BatchCreateResponse([a for a in answers if a is not None]))

    async def get_execution(self, request: Request) -> Response:
        return json_response(200, await self.server.get_execution(request.path_params["id"]))

    async def get_state(self, request: Request) -> Response:
        state = await self.server.get_execution_state(request.path_params["id"])
        return json_response(200, state)

    async def get_result(self, request: Request) -> Response:
        execution_id = request.path_params["id"]
        result = await self.server.get_execution_result(execution_id)
        if result is None:
            raise ApiError(404, f"execution result not found: {execution_id}")
        return raw_response(200, result)

    async def cancel(self, request: Request) -> Response:
        """The body is optional: no body cancels as the operator, without a reason."""
        args = (decode_json(request, CancelExecutionArgs) if request.body.strip()
                else CancelExecutionArgs())
        result = await self.server.cancel_execution(request.path_params["id"], args)
        if result.previous_phase != "terminal":  # not a repeat of an earlier cancel
            EXECUTIONS_COMPLETED.labels(outcome="cancelled").inc()
        body = CancelledBody(result.execution_id, result.public_state)
        return json_response(200, CancelResponse(Cancelled=body))

    async def change_priority(self, request: Request) -> Response:
        execution_id = request.path_params["id"]
        args = decode_json(request, PriorityRequest)
        await self.server.change_priority(execution_id, args.new_priority)
        return json_response(200, PriorityResponse(Changed=ChangedBody(execution_id)))

    async def replay(self, request: Request) -> Response:
        state = await self.server.replay_execution(request.path_params["id"])
        return json_response(200, ReplayResponse(Replayed=ReplayedBody(state)))

    async def revoke_lease(self, request: Request) -> Response:
        result = await self.server.revoke_lease(request.path_params["id"])
        if result.status == "already_satisfied":
            answer = RevokeResponse(AlreadySatisfied=AlreadySatisfiedBody(result.reason))
        else:
            answer = RevokeResponse(Revoked=RevokedBody(result.lease_id, int(result.lease_epoch)))
        return json_response(200, answer)

    async def reclaim(self, request: Request) -> Response:
        args = decode_json(request, ReclaimGrantArgs)
        result = await self.server.issue_reclaim_grant(request.path_params["id"], args)
        if isinstance(result, ReclaimGranted):
            EXECUTIONS_CLAIMED.labels(kind="reclaim").inc()
        return json_response(200, result)


def _batch_item(outcome: CreateResult | FFError) -> BatchCreateItem:
    if isinstance(outcome, FFError):
        error = api_error_for(outcome)
        assert error is not None
        # Unlike a single answer's body, an item's error always names its code, so the
        # client can raise the typed error for that item.
        return BatchCreateItem(Error=ItemErrorBody(
            error.status, error.error, error.kind or outcome.code, error.retryable))
    if outcome.duplicate:
        return BatchCreateItem(Duplicate=DuplicateBody(outcome.execution_id,
                                                       outcome.public_state))
    return BatchCreateItem(Created=CreatedBody(outcome.execution_id, outcome.public_state))


def register(add: AddRoute, server: Server) -> None:
    h = _Handlers(server)
    execution = "/v1/executions/{id}"
    add("GET", "/v1/executions", h.list_executions, body_limit=BODY_LIMIT_LARGE,
        response_type=ExecutionPage, summary="List a partition's executions")
    add("POST", "/v1/executions", h.create_execution, body_limit=BODY_LIMIT_LARGE,
        request_type=CreateExecutionArgs, response_type=CreateResponse, response_status=201,
        summary="Create an execution (200 with Duplicate for a repeated idempotency key)")
    add("POST", "/v1/executions:batch", h.create_executions, body_limit=BODY_LIMIT_BATCH,
        request_type=list[CreateExecutionArgs], response_type=BatchCreateResponse,
        summary="Create up to 1,000 executions; one answer per item, in order")
    add("GET", execution, h.get_execution, response_type=ExecutionInfo,
        summary="Read an execution")
    add("GET", f"{execution}/state", h.get_state, response_type=str,
        summary="Read an execution's public state")
    add("GET", f"{execution}/result", h.get_result, response_type=bytes,
        summary="Read a completed execution's result (raw bytes)")
    add("POST", f"{execution}/cancel", h.cancel, body_limit=BODY_LIMIT_CONTROL,
        request_type=CancelExecutionArgs, response_type=CancelResponse,
        summary="Cancel an execution")
    add("PUT", f"{execution}/priority", h.change_priority, body_limit=BODY_LIMIT_CONTROL,
        request_type=PriorityRequest, response_type=PriorityResponse,
        summary="Change a waiting execution's priority")
    add("POST", f"{execution}/replay", h.replay, body_limit=BODY_LIMIT_CONTROL,
        response_type=ReplayResponse, summary="Run a terminal execution again")
    add("POST", f"{execution}/revoke-lease", h.revoke_lease, body_limit=BODY_LIMIT_CONTROL,
        response_type=RevokeResponse, summary="Revoke the current lease")
    add("POST", f"{execution}/reclaim", h.reclaim, body_limit=BODY_LIMIT_CONTROL,
        request_type=ReclaimGrantArgs,
        response_type=ReclaimGranted | ReclaimNotReclaimable | ReclaimCapExceeded,
        summary="Grant a worker the reclaim of an expired or revoked lease")
