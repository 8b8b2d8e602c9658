"""Routes of the workers area: claim grants."""

from __future__ import annotations

from ff.core.records import ClaimGrant
from ff.http._codec import decode_json
from ff.http._message import Request, Response, empty_response, json_response
from ff.http._router import BODY_LIMIT_CONTROL
from ff.http.wire import ClaimRequest
from ff.server import Server

from ._common import EXECUTIONS_CLAIMED, AddRoute


class _Handlers:
    def __init__(self, server: Server) -> None:
        self.server = server

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


def register(add: AddRoute, server: Server) -> None:
    h = _Handlers(server)
    add("POST", "/v1/workers/{worker_id}/claim", h.claim, body_limit=BODY_LIMIT_CONTROL,
        request_type=ClaimRequest, response_type=ClaimGrant,
        summary="The next claim grant for a worker (204 when there is no work)")
