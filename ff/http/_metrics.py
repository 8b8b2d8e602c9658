"""The HTTP layer's own metrics and the `GET /metrics` handler.

What lives here: `ff_http_requests_total` and `ff_http_request_duration_seconds` (labels
`method`, `path` = route template or `unknown`, `status`, as in the reference), the function
the pipeline calls once per answer, and `metrics_handler`, which serves a registry as
Prometheus text. The registry itself lives in `ff/metrics.py`.
"""

from __future__ import annotations

from ff.metrics import (
    CONTENT_TYPE,
    REGISTRY,
    Counter,
    CounterChild,
    Histogram,
    HistogramChild,
    Registry,
)

from ._message import Handler, Request, Response, raw_response

__all__ = ["metrics_handler", "observe_request"]

REQUESTS = Counter(
    "ff_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "path", "status"],
)
DURATION = Histogram(
    "ff_http_request_duration_seconds",
    "Time from request head to response, by method, route template and status.",
    ["method", "path", "status"],
)

_STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)

# (method, path, status) -> the two children, so a request costs one dict lookup here. The
# key space stays bounded: other methods collapse to OTHER and paths are templates.
_children: dict[tuple[str, str, int], tuple[CounterChild, HistogramChild]] = {}


def observe_request(method: str, path: str, status: int, seconds: float) -> None:
    """Count one answered request and observe its latency."""
    if method not in _STANDARD_METHODS:
        method = "OTHER"
    key = (method, path, status)
    pair = _children.get(key)
    if pair is None:
        labels = {"method": method, "path": path, "status": status}
        pair = _children[key] = (REQUESTS.labels(**labels), DURATION.labels(**labels))
    pair[0].inc()
    pair[1].observe(seconds)


def metrics_handler(registry: Registry = REGISTRY) -> Handler:
    """A handler serving `registry` in Prometheus text format 0.0.4 (mount it at `/metrics`)."""

    async def serve_metrics(request: Request) -> Response:
        return raw_response(200, registry.render().encode(), CONTENT_TYPE)

    return serve_metrics
