"""ff's HTTP/1.1 JSON front end on trio + h11: the public surface of `ff.http`.

Build an app by registering routes on a `Router` (one line each) and serve it::

    router = Router()
    router.add("GET", "/v1/executions/{id}/state", get_state, response_type=PublicState)
    router.add("GET", "/metrics", metrics_handler())
    router.add("GET", "/v1/openapi.json", openapi_handler(router))
    app = HttpApp(router, api_token=token, cors_origins=["*"])
    port = await nursery.start(serve_http, app, "0.0.0.0", 9090)

Handlers are `async def handler(request: Request) -> Response`; they decode with
`decode_json`/`query_*`, raise `ApiError` for typed failures, and answer with
`json_response`/`raw_response`/`empty_response`. Everything but `serve_http` is sans-I/O.

The ff API itself is `build_app(server)` (`routes/`): every route of the Server, with
library and backend errors mapped to typed statuses by `errors.py`.
"""

from ._app import Exchange, HttpApp
from ._codec import decode_json, query_bool, query_int, query_str
from ._message import (
    ApiError,
    ErrorBody,
    Handler,
    PayloadTooLarge,
    Request,
    Response,
    empty_response,
    json_response,
    raw_response,
)
from ._metrics import metrics_handler
from ._router import (
    BODY_LIMIT_CONTROL,
    BODY_LIMIT_LARGE,
    BODY_LIMIT_MEDIUM,
    DEFAULT_BODY_LIMIT,
    Route,
    RouteMatch,
    Router,
)
from ._server import serve_http
from .openapi import build_openapi, openapi_handler

__all__ = [
    "BODY_LIMIT_CONTROL",
    "BODY_LIMIT_LARGE",
    "BODY_LIMIT_MEDIUM",
    "DEFAULT_BODY_LIMIT",
    "ApiError",
    "ErrorBody",
    "Exchange",
    "Handler",
    "HttpApp",
    "PayloadTooLarge",
    "Request",
    "Response",
    "Route",
    "RouteMatch",
    "Router",
    "build_app",
    "build_openapi",
    "build_router",
    "decode_json",
    "empty_response",
    "json_response",
    "metrics_handler",
    "openapi_handler",
    "query_bool",
    "query_int",
    "query_str",
    "raw_response",
    "serve_http",
]


def __getattr__(name: str) -> object:
    """`build_app` and `build_router` load the Server on first use, not with the package:
    the client imports `ff.http.wire` and must not pull in the engine."""
    if name in ("build_app", "build_router"):
        from . import routes

        return getattr(routes, name)
    raise AttributeError(f"module 'ff.http' has no attribute {name!r}")
