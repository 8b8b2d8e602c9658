"""Routes of the waitpoints area: pending waitpoints, the token read, signal delivery,
operator resume and the HMAC secret rotation.

The token route answers `Cache-Control: no-store` on 200 and 404 alike: a token is a bearer
credential for signals and must not sit in a cache.
"""

from __future__ import annotations

from ff.core.errors import NotFoundError
from ff.core.records import DeliverSignalArgs, PendingWaitpointInfo, RotateSecretResult
from ff.http._codec import decode_json
from ff.http._message import ApiError, Request, Response, json_response
from ff.http._router import BODY_LIMIT_CONTROL, BODY_LIMIT_MEDIUM
from ff.http.wire import (
    AcceptedBody,
    DuplicateSignalBody,
    ResumedBody,
    ResumeRequest,
    ResumeResponse,
    RotateRequest,
    SignalResponse,
    TokenBody,
)
from ff.server import Server

from ._common import AddRoute

NO_STORE = [("cache-control", "no-store")]
ROTATE_ROUTE_TIMEOUT_S = 130.0  # the rotation's own deadline (120 s) answers 504 first


class _Handlers:
    def __init__(self, server: Server) -> None:
        self.server = server

    async def pending_waitpoints(self, request: Request) -> Response:
        infos = await self.server.list_pending_waitpoints(request.path_params["id"])
        return json_response(200, infos)

    async def token(self, request: Request) -> Response:
        try:
            token = await self.server.get_waitpoint_token(
                request.path_params["id"], request.path_params["waitpoint_id"])
        except NotFoundError as exc:
            raise ApiError(404, exc.detail, headers=list(NO_STORE)) from None
        return json_response(200, TokenBody(token), headers=list(NO_STORE))

    async def signal(self, request: Request) -> Response:
        args = decode_json(request, DeliverSignalArgs)
        result = await self.server.deliver_signal(request.path_params["id"], args)
        if result.duplicate:
            body = SignalResponse(Duplicate=DuplicateSignalBody(result.signal_id))
        else:
            body = SignalResponse(Accepted=AcceptedBody(result.signal_id, result.effect))
        return json_response(200, body)

    async def resume(self, request: Request) -> Response:
        args = (decode_json(request, ResumeRequest) if request.body.strip()
                else ResumeRequest())
        state = await self.server.resume_execution(request.path_params["id"],
                                                   resume_delay_ms=args.resume_delay_ms)
        return json_response(200, ResumeResponse(Resumed=ResumedBody(state)))

    async def rotate(self, request: Request) -> Response:
        args = decode_json(request, RotateRequest)
        result = await self.server.rotate_waitpoint_secret(args.new_kid, args.new_secret_hex)
        return json_response(200, result)


def register(add: AddRoute, server: Server) -> None:
    h = _Handlers(server)
    execution = "/v1/executions/{id}"
    add("GET", f"{execution}/pending-waitpoints", h.pending_waitpoints,
        response_type=list[PendingWaitpointInfo],
        summary="The open waitpoints of an execution (without their tokens)")
    add("GET", f"{execution}/waitpoints/{{waitpoint_id}}/token", h.token,
        response_type=TokenBody,
        summary="The raw token of an open waitpoint (Cache-Control: no-store)")
    add("POST", f"{execution}/signal", h.signal, body_limit=BODY_LIMIT_MEDIUM,
        request_type=DeliverSignalArgs, response_type=SignalResponse,
        summary="Deliver a signal to a waitpoint (authenticated by its token)")
    add("POST", f"{execution}/resume", h.resume, body_limit=BODY_LIMIT_CONTROL,
        request_type=ResumeRequest, response_type=ResumeResponse,
        summary="Resume a suspended execution whatever its condition (operator)")
    add("POST", "/v1/admin/rotate-waitpoint-secret", h.rotate, body_limit=BODY_LIMIT_CONTROL,
        timeout=ROTATE_ROUTE_TIMEOUT_S, request_type=RotateRequest,
        response_type=RotateSecretResult,
        summary="Rotate the waitpoint HMAC secret on every partition (429 while one runs)")
