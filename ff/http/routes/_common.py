"""What every route module shares: the outcome counters and the helper that registers
a handler with the library-error mapping."""

from __future__ import annotations

from typing import Any, Protocol

from ff import metrics
from ff.http._message import Handler
from ff.http._router import Router
from ff.http.errors import mapping_errors

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


class AddRoute(Protocol):
    def __call__(self, method: str, pattern: str, handler: Handler, **options: Any) -> None: ...


def route_adder(router: Router) -> AddRoute:
    """`add(method, pattern, handler, **options)`: registers a handler whose library and
    backend errors become typed statuses (`ff/http/errors.py`)."""

    def add(method: str, pattern: str, handler: Handler, **options: Any) -> None:
        router.add(method, pattern, mapping_errors(handler), **options)

    return add
