"""Routes of the health area: liveness."""

from __future__ import annotations

from ff.http._message import Request, Response, json_response
from ff.http.wire import Health
from ff.server import Server

from ._common import AddRoute


def register(add: AddRoute, server: Server) -> None:
    healthy = json_response(200, Health())

    async def healthz(request: Request) -> Response:
        await server.client.execute("PING")
        return healthy

    add("GET", "/healthz", healthz, response_type=Health, summary="Liveness (Valkey PING)")
