"""The ff REST API: every route the Server offers, one thin handler each.

    app = build_app(server)                # router + token + CORS from server.config
    port = await nursery.start(serve_http, app, "0.0.0.0", 9090)

What lives here: `build_router(server)`, `build_app(server, config)`, the handlers and the
engine outcome counters (`ff_executions_created_total`, `..._claimed_total`,
`..._completed_total`). A handler decodes (path, query, body), calls one `Server` method and
encodes the result in the reference's wire shape (`ff/http/wire.py`); library and backend
errors propagate and `ff/http/errors.py` turns them into typed statuses.

What must not live here: engine logic, Valkey commands (beyond the health PING) or HTTP
mechanics (`ff/http/_app.py`, `_server.py`).
"""

from __future__ import annotations

import ff
from ff import metrics
from ff.config import ConfigError, ServerConfig
from ff.core.records import (
    CancelExecutionArgs,
    ClaimGrant,
    CreateExecutionArgs,
    ExecutionInfo,
    ExecutionPage,
    ReclaimCapExceeded,
    ReclaimGrantArgs,
    ReclaimGranted,
    ReclaimNotReclaimable,
)
from ff.server import Server

from ._app import HttpApp
from ._codec import decode_json, query_int, query_str
from ._message import (
    ApiError,
    Handler,
    Request,
    Response,
    empty_response,
    json_response,
    raw_response,
)
from ._metrics import metrics_handler, pool_metrics
from ._router import BODY_LIMIT_CONTROL, BODY_LIMIT_LARGE, Router
from .errors import mapping_errors
from .openapi import openapi_handler
from .wire import (
    AlreadySatisfiedBody,
    CancelledBody,
    CancelResponse,
    ChangedBody,
    ClaimRequest,
    CreatedBody,
    CreateResponse,
    DuplicateBody,
    Health,
    PriorityRequest,
    PriorityResponse,
    ReplayedBody,
    ReplayResponse,
    RevokedBody,
    RevokeResponse,
)

__all__ = [
    "EXECUTIONS_CLAIMED",
    "EXECUTIONS_COMPLETED",
    "EXECUTIONS_CREATED",
    "build_app",
    "build_router",
]

LIST_LIMIT_DEFAULT = 50

EXECUTIONS_CREATED = metrics.Counter(
    "ff_executions_created_total", "Executions created (idempotent repeats not counted)."
)
EXECUTIONS_CLAIMED = metrics.Counter(
    "ff_executions_claimed_total",
    "Claim grants issued to workers, by kind (claim or reclaim).",
    ["kind"],
)
EXECUTIONS_COMPLETED = metrics.Counter(
    "ff_executions_completed_total",
    "Executions this server moved to a terminal state, by outcome. Workers finish "
    "executions in Valkey directly; those are not seen here.",
    ["outcome"],
)


def _decode_create(request: Request) -> CreateExecutionArgs:
    """The create body; a bad `policy` is the library's `invalid_policy_json`, not a shape error.

    msgspec validates the policy while decoding the body, so its error names the JSON path;
    one under `$.policy` is reported with the policy's own code.
    """
    try:
        return decode_json(request, CreateExecutionArgs)
    except ApiError as exc:
        if exc.kind == "invalid_body" and "`$.policy" in exc.error:
            detail = exc.error.removeprefix("invalid JSON: ")
            raise ApiError(400, f"invalid_policy_json: {detail}") from None
        raise


class _Handlers:
    """The route handlers, bound to one Server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._healthy = json_response(200, Health())

    # -- executions ------------------------------------------------------------------

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
        created = await self.server.create_execution(_decode_create(request))
        if created.duplicate:
            duplicate = DuplicateBody(created.execution_id, created.public_state)
            return json_response(200, CreateResponse(Duplicate=duplicate))
        EXECUTIONS_CREATED.inc()
        body = CreatedBody(created.execution_id, created.public_state)
        return json_response(201, CreateResponse(Created=body))

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

    # -- workers ---------------------------------------------------------------------

    async def claim(self, request: Request) -> Response:
        args = decode_json(request, ClaimRequest)
        grant = await self.server.claim_for_worker(
            lane_id=args.lane_id, worker_id=request.path_params["worker_id"],
            worker_instance_id=args.worker_instance_id, capabilities=args.capabilities,
            grant_ttl_ms=args.grant_ttl_ms,
        )
        if grant is None:
            return empty_response(204)
        EXECUTIONS_CLAIMED.labels(kind=grant.kind).inc()
        return json_response(200, grant)

    # -- health ----------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        await self.server.client.execute("PING")
        return self._healthy


def build_router(server: Server, *, bearer_auth: bool = False) -> Router:
    """Every route of the API on `server`; `bearer_auth` only marks the OpenAPI document."""
    router = Router()
    h = _Handlers(server)

    def add(method: str, pattern: str, handler: Handler, **options: object) -> None:
        router.add(method, pattern, mapping_errors(handler), **options)  # type: ignore[arg-type]

    execution = "/v1/executions/{id}"
    add("GET", "/v1/executions", h.list_executions, body_limit=BODY_LIMIT_LARGE,
        response_type=ExecutionPage, summary="List a partition's executions")
    add("POST", "/v1/executions", h.create_execution, body_limit=BODY_LIMIT_LARGE,
        request_type=CreateExecutionArgs, response_type=CreateResponse, response_status=201,
        summary="Create an execution (200 with Duplicate for a repeated idempotency key)")
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
    add("POST", "/v1/workers/{worker_id}/claim", h.claim, body_limit=BODY_LIMIT_CONTROL,
        request_type=ClaimRequest, response_type=ClaimGrant,
        summary="The next claim grant for a worker (204 when there is no work)")
    add("GET", "/healthz", h.healthz, response_type=Health, summary="Liveness (Valkey PING)")
    router.add("GET", "/metrics", metrics_handler(metrics.REGISTRY, pool_metrics(
        server.client.stats)), summary="Prometheus metrics")
    router.add("GET", "/v1/openapi.json", openapi_handler(
        router, title="ff", version=ff.__version__, bearer_auth=bearer_auth),
        summary="This document")
    return router


def build_app(server: Server, config: ServerConfig | None = None) -> HttpApp:
    """The API app with the token and CORS origins of `config` (default: the server's).

    A CORS origin list that cannot be used is a `ConfigError`, as at boot.
    """
    config = config or server.config
    router = build_router(server, bearer_auth=bool(config.api_token))
    try:
        return HttpApp(router, api_token=config.api_token,
                       cors_origins=list(config.cors_origins))
    except ValueError as exc:
        raise ConfigError(f"FF_CORS_ORIGINS: {exc}") from None
