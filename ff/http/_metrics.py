"""The HTTP layer's own metrics and the `GET /metrics` handler.

What lives here: `ff_http_requests_total` and `ff_http_request_duration_seconds` (labels
`method`, `path` = route template or `unknown`, `status`, as in the reference), the function
the pipeline calls once per answer, `pool_metrics` (`ff_resp_pool_*`, read from a client's
pool at each scrape) and `metrics_handler`, which serves registries as Prometheus text. The
registry itself lives in `ff/metrics.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from ff.metrics import (
    CONTENT_TYPE,
    REGISTRY,
    Counter,
    CounterChild,
    Gauge,
    Histogram,
    HistogramChild,
    Registry,
)

from ._message import Handler, Request, Response, raw_response

if TYPE_CHECKING:
    from ff.resp import PoolStats

    _Reading = tuple[type[Gauge | Counter], str, str, Callable[[PoolStats], float]]

__all__ = ["metrics_handler", "observe_request", "pool_metrics"]

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


def _read_now(stats: Callable[[], PoolStats], read: Callable[[PoolStats], float]) -> float:
    return read(stats())


def pool_metrics(stats: Callable[[], PoolStats]) -> Registry:
    """`ff_resp_pool_*` for one RESP pool (`stats` is e.g. `server.client.stats`), in a
    registry of its own: each app publishes its own server's pool, and nothing global keeps
    a closed server's client alive."""
    registry = Registry()
    readings: tuple[_Reading, ...] = (
        (Gauge, "size", "Connection slots of the shared RESP pool.", lambda s: s.size),
        (Gauge, "connections", "Live connections of the shared RESP pool.",
         lambda s: s.connections),
        (Gauge, "waiters", "Callers waiting for a live connection (none up yet).",
         lambda s: s.waiters),
        (Gauge, "pending_replies", "Replies the live connections still owe their callers.",
         lambda s: s.pending_replies),
        (Counter, "reconnects_total", "Connections opened again after one broke or failed.",
         lambda s: s.reconnects),
        (Counter, "errors_total", "Failed connects and lost connections.",
         lambda s: s.errors),
        (Gauge, "last_error_timestamp_seconds",
         "Unix time of the latest connection error (0: none yet); its message is in "
         "Client.stats().last_error.", lambda s: s.last_error_at or 0),
    )
    for kind, name, documentation, read in readings:
        metric = kind(f"ff_resp_pool_{name}", documentation, registry=registry)
        metric.set_function(partial(_read_now, stats, read))
    return registry


def metrics_handler(*registries: Registry) -> Handler:
    """A handler serving `registries` (default: the process-wide one) in Prometheus text
    format 0.0.4, one after the other (mount it at `/metrics`)."""
    registries = registries or (REGISTRY,)

    async def serve_metrics(request: Request) -> Response:
        text = "".join(registry.render() for registry in registries)
        return raw_response(200, text.encode(), CONTENT_TYPE)

    return serve_metrics
