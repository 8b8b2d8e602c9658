"""The route table: `Router.add(method, "/v1/executions/{id}/state", handler, ...)` and matching.

What lives here: `Route` (one registered method + template with its body cap, timeout and the
msgspec types the OpenAPI document shows), `Router`, and the reference's body-limit classes.
Matching is pure and allocation-light: literal-only templates hit one dict lookup, the rest walk
a segment trie built at registration time (no regexes compiled per request). A literal segment
beats a `{param}` at the same position, so "/v1/x/list" can sit beside "/v1/x/{id}".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ._message import Handler

__all__ = [
    "BODY_LIMIT_BATCH",
    "BODY_LIMIT_CONTROL",
    "BODY_LIMIT_LARGE",
    "BODY_LIMIT_MEDIUM",
    "DEFAULT_BODY_LIMIT",
    "Route",
    "RouteMatch",
    "Router",
]

#: `GET`/`POST /v1/executions` (create carries the input payload).
BODY_LIMIT_LARGE = 1024 * 1024
#: `POST /v1/executions:batch` (up to 1,000 creates, each with its payload).
BODY_LIMIT_BATCH = 16 * 1024 * 1024
#: `POST /v1/executions/{id}/signal` (carries the signal payload).
BODY_LIMIT_MEDIUM = 256 * 1024
#: Every other control route.
BODY_LIMIT_CONTROL = 64 * 1024
DEFAULT_BODY_LIMIT = BODY_LIMIT_CONTROL

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_METHOD = re.compile(r"[A-Z]+")


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path template, with what the front end needs to serve and document it.

    `timeout` overrides the server's request timeout for routes that legitimately run long
    (a stream tail blocking 30 s, the 120 s secret rotation).
    """

    method: str
    pattern: str
    handler: Handler
    body_limit: int
    timeout: float | None
    request_type: Any
    response_type: Any
    response_status: int
    summary: str | None
    param_names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A path that matched a template: the route for the method (None -> 405) and the params."""

    pattern: str
    route: Route | None
    params: dict[str, str]
    allowed: tuple[str, ...]


class _Node:
    __slots__ = ("literal", "param", "pattern", "routes")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        self.routes: dict[str, Route] = {}
        self.pattern = ""


def _segments(path: str) -> list[str]:
    return path[1:].split("/")


class Router:
    """Method + template -> handler. Register everything before serving; matching never locks."""

    def __init__(self) -> None:
        self._root = _Node()
        self._static: dict[str, _Node] = {}
        self._routes: list[Route] = []

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every route in registration order (the OpenAPI document and CORS read this)."""
        return tuple(self._routes)

    def add(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        body_limit: int = DEFAULT_BODY_LIMIT,
        timeout: float | None = None,
        request_type: Any = None,
        response_type: Any = None,
        response_status: int = 200,
        summary: str | None = None,
    ) -> Route:
        """Register `handler` for `method` on `pattern` ("/literal/{param}/...").

        `body_limit` caps the request body (structured 413 beyond it). `request_type`,
        `response_type` (documented under `response_status`) and `summary` only feed the
        OpenAPI document; decoding stays explicit in the handler via `decode_json`.
        """
        if _METHOD.fullmatch(method) is None:
            raise ValueError(f"method must be an upper-case token, got {method!r}")
        if not pattern.startswith("/"):
            raise ValueError(f"route pattern must start with '/': {pattern!r}")
        if body_limit < 0:
            raise ValueError("body_limit must be >= 0")
        node = self._root
        names: list[str] = []
        literal_only = True
        for segment in _segments(pattern):
            param = _PARAM.fullmatch(segment)
            if param is not None:
                if param.group(1) in names:
                    raise ValueError(f"duplicate parameter {param.group(1)!r} in {pattern!r}")
                names.append(param.group(1))
                literal_only = False
                if node.param is None:
                    node.param = _Node()
                node = node.param
            elif "{" in segment or "}" in segment:
                raise ValueError(f"malformed segment {segment!r} in {pattern!r}")
            else:
                node = node.literal.setdefault(segment, _Node())
        if method in node.routes:
            raise ValueError(f"{method} {pattern} clashes with {node.routes[method].pattern}")
        route = Route(
            method=method,
            pattern=pattern,
            handler=handler,
            body_limit=body_limit,
            timeout=timeout,
            request_type=request_type,
            response_type=response_type,
            response_status=response_status,
            summary=summary,
            param_names=tuple(names),
        )
        node.routes[method] = route
        node.pattern = node.pattern or pattern
        if literal_only:
            self._static[pattern] = node
        self._routes.append(route)
        return route

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route for `path` (without the query string), or None when no template fits."""
        node = self._static.get(path)
        values: list[str] = []
        if node is None:
            segments = [unquote(s) if "%" in s else s for s in _segments(path)]
            node = self._walk(self._root, segments, 0, values)
            if node is None:
                return None
        route = node.routes.get(method)
        if route is None:
            return RouteMatch(node.pattern, None, {}, tuple(sorted(node.routes)))
        params = dict(zip(route.param_names, values, strict=True)) if values else {}
        return RouteMatch(route.pattern, route, params, ())

    def _walk(self, node: _Node, segments: list[str], i: int, values: list[str]) -> _Node | None:
        if i == len(segments):
            return node if node.routes else None
        segment = segments[i]
        child = node.literal.get(segment)
        if child is not None:
            found = self._walk(child, segments, i + 1, values)
            if found is not None:
                return found
        if node.param is not None and segment:
            values.append(segment)
            found = self._walk(node.param, segments, i + 1, values)
            if found is not None:
                return found
            values.pop()
        return None
