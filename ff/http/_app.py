"""HttpApp: the request pipeline (middleware + routing + error mapping), without sockets.

What lives here: `HttpApp` and `Exchange`, the state of one request as it goes through the
pipeline, and the HTTP metrics. The order is the reference's, outermost first:

1. request timeout: the deadline the server passes to `dispatch` (and uses for the body read);
2. CORS: preflights are answered here; allow-origin headers are added to every answer;
3. metrics: every answer, including 401/404/413/preflight, is counted per route template;
4. Bearer auth (`/healthz` and `/metrics` exempt); with auth on, an unknown path gets 401 so the
   route table does not leak, and an unauthenticated oversized body gets 401, not 413;
5. routing (404 / 405 with `Allow`) and the per-route body limit (structured 413);
6. the handler; `ApiError` becomes its JSON body, anything else a logged 500 (the log is
   summarised per route and exception type, so a failure every request hits does not flood).

The pipeline is split in two because the server must decide on auth, route and declared size
*before* it reads a body: `start()` looks at the head only, `dispatch()` runs the handler with
the body, `complete()` adds CORS headers and records metrics. `handle()` chains the three for
callers (and tests) that already hold a whole request.

What must not live here: h11, socket reads or writes, connection state.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import parse_qs

import trio

from ff.log_summary import LogSummary

from ._cors import CorsPolicy
from ._message import (
    ApiError,
    ErrorBody,
    PayloadTooLarge,
    Request,
    Response,
    json_response,
)
from ._metrics import observe_request
from ._router import Route, Router

__all__ = ["Exchange", "HttpApp"]

log = logging.getLogger("ff.http")

DEFAULT_AUTH_EXEMPT = ("/healthz", "/metrics")


@dataclass(slots=True)
class Exchange:
    """One request in flight: the parsed head, its route, and an early answer if one was made.

    When `response` is set after `start()`, the handler must not run and the body need not be
    read (CORS preflight, 401, 404, 405, or a declared `Content-Length` over the cap).
    """

    request: Request
    route: Route | None
    response: Response | None
    label_path: str
    started: float

    @property
    def body_limit(self) -> int:
        return self.route.body_limit if self.route is not None else 0

    @property
    def timeout(self) -> float | None:
        return self.route.timeout if self.route is not None else None


def _parse_query(query: str) -> dict[str, list[str]]:
    return parse_qs(query, keep_blank_values=True) if query else {}


def _only_api_error(exc: BaseException) -> ApiError | None:
    """The ApiError a handler's nursery raised, if the group holds nothing else."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(ApiError)
        if matched is not None and rest is None:
            first = matched.exceptions[0]
            return _only_api_error(first)
    return None


class HttpApp:
    """A router plus the front-end policy: token, CORS origins, auth-exempt paths.

    `api_token`: None or "" means no auth (as `FF_API_TOKEN` unset or empty).
    `cors_origins`: None means no CORS headers at all; `["*"]` is permissive; an empty list
    raises ValueError.
    """

    def __init__(
        self,
        router: Router,
        *,
        api_token: str | None = None,
        cors_origins: Sequence[str] | None = None,
        auth_exempt: Iterable[str] = DEFAULT_AUTH_EXEMPT,
    ) -> None:
        self.router = router
        # A bug hit by every request on a route must not write a traceback per request.
        self._failures = LogSummary(log)
        self._expected_auth = f"Bearer {api_token}".encode() if api_token else None
        self._auth_exempt = frozenset(auth_exempt)
        self._cors = (
            CorsPolicy(cors_origins, allow_authorization=bool(api_token))
            if cors_origins is not None
            else None
        )

    # -- phase 1: the head ------------------------------------------------------------------

    def start(
        self, method: str, target: str, headers: dict[str, str], *, remote: str | None = None
    ) -> Exchange:
        """Parse the target and decide everything that does not need the body."""
        path, _, query = target.partition("?")
        request = Request(method, path, _parse_query(query), headers, remote=remote)
        exchange = Exchange(request, None, None, "unknown", time.perf_counter())

        if (
            self._cors is not None
            and method == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        ):
            matched = self.router.match(headers["access-control-request-method"], path)
            if matched is not None:
                exchange.label_path = matched.pattern
            methods = ", ".join(sorted({r.method for r in self.router.routes}))
            exchange.response = self._cors.preflight(headers, methods)
            return exchange

        matched = self.router.match(method, path)
        if matched is not None:
            exchange.label_path = matched.pattern

        if self._expected_auth is not None and path not in self._auth_exempt:
            given = headers.get("authorization", "").encode("latin-1")
            if not hmac.compare_digest(given, self._expected_auth):
                exchange.response = json_response(
                    401,
                    ErrorBody("missing or invalid Authorization header"),
                    headers=[("www-authenticate", "Bearer")],
                )
                return exchange

        if matched is None:
            exchange.response = ApiError(
                404, f"no route for {path}", kind="route_not_found"
            ).to_response()
            return exchange
        if matched.route is None:
            exchange.response = ApiError(
                405,
                f"method {method} not allowed on {matched.pattern}",
                kind="method_not_allowed",
                headers=[("allow", ", ".join(matched.allowed))],
            ).to_response()
            return exchange

        route = matched.route
        exchange.route = route
        request.path_params = matched.params
        request.route = route.pattern
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > route.body_limit:
            exchange.response = self.too_large(exchange)
        return exchange

    def too_large(self, exchange: Exchange) -> Response:
        """The structured 413, naming the cap and the route template that set it."""
        route = exchange.route
        assert route is not None, "only a routed request has a body cap"
        body = PayloadTooLarge(limit_bytes=route.body_limit, route=route.pattern)
        return json_response(413, body)

    # -- phase 2: the handler ---------------------------------------------------------------

    async def dispatch(
        self, exchange: Exchange, body: bytes, deadline: float = math.inf
    ) -> Response:
        """Run the route's handler on the full body; map every outcome to a response."""
        route = exchange.route
        assert route is not None, "dispatch() needs an exchange that start() routed"
        request = exchange.request
        request.body = body
        try:
            with trio.move_on_at(deadline) as scope:
                response = await route.handler(request)
            if scope.cancelled_caught:
                return ApiError(
                    503, "request timed out", kind="timeout", retryable=True
                ).to_response()
            if not isinstance(response, Response):
                raise TypeError(f"handler returned {type(response).__name__}, not Response")
            return response
        except Exception as exc:
            api_error = _only_api_error(exc)
            if api_error is not None:
                return api_error.to_response()
            self._failures.log(
                logging.ERROR,
                (route.pattern, type(exc)),
                "http: handler failed method=%s route=%s path=%s",
                request.method,
                route.pattern,
                request.path,
                exc_info=True,
            )
            return json_response(500, ErrorBody("internal error"))

    # -- phase 3: on the way out --------------------------------------------------------------

    def complete(self, exchange: Exchange, response: Response) -> Response:
        """Add CORS headers and record the request in the metrics.

        A handler may return a shared, prebuilt Response, so headers are added to a copy.
        """
        if self._cors is not None:
            extra = self._cors.response_headers(exchange.request.headers.get("origin", ""))
            if extra:
                response = replace(response, headers=[*response.headers, *extra])
        observe_request(
            exchange.request.method,
            exchange.label_path,
            response.status,
            time.perf_counter() - exchange.started,
        )
        return response

    async def handle(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        deadline: float = math.inf,
    ) -> Response:
        """The whole pipeline for a request already in memory (no sockets involved)."""
        exchange = self.start(method, target, {} if headers is None else headers)
        response = exchange.response
        if response is None:
            if len(body) > exchange.body_limit:
                response = self.too_large(exchange)
            else:
                response = await self.dispatch(exchange, body, deadline)
        return self.complete(exchange, response)
