"""The ff REST API: every route the Server offers, one thin handler each, one module
per area (`executions`, `lanes`, `flows`, `workers`, `waitpoints`, `streams`, `budgets`, `health`; a
new area adds its module to `AREAS`).

    app = build_app(server)                # router + token + CORS from server.config
    port = await nursery.start(serve_http, app, "0.0.0.0", 9090)

A handler decodes (path, query, body), calls one `Server` method and encodes the result in
the reference's wire shape (`ff/http/wire.py`); library and backend errors propagate and
`ff/http/errors.py` turns them into typed statuses.

What must not live here: engine logic, Valkey commands (beyond the health PING) or HTTP
mechanics (`ff/http/_app.py`, `_server.py`).
"""

from __future__ import annotations

import ff
from ff import metrics
from ff.config import ConfigError, ServerConfig
from ff.http._app import HttpApp
from ff.http._metrics import metrics_handler, pool_metrics
from ff.http._router import Router
from ff.http.openapi import openapi_handler
from ff.server import Server

from . import budgets, executions, flows, health, lanes, streams, waitpoints, workers
from ._common import EXECUTIONS_CLAIMED, EXECUTIONS_COMPLETED, EXECUTIONS_CREATED, route_adder

__all__ = [
    "EXECUTIONS_CLAIMED",
    "EXECUTIONS_COMPLETED",
    "EXECUTIONS_CREATED",
    "build_app",
    "build_router",
]

AREAS = (executions, lanes, flows, workers, waitpoints, streams, budgets, health)


def build_router(server: Server, *, bearer_auth: bool = False) -> Router:
    """Every route of the API on `server`; `bearer_auth` only marks the OpenAPI document."""
    router = Router()
    add = route_adder(router)
    for area in AREAS:
        area.register(add, server)
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
