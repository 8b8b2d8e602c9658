"""Typed wrappers for the budget functions (lua/budget.lua). Every call names keys of the
one `{b:M}` partition its budget id hashes to."""

from __future__ import annotations

import msgspec

from ff.core.budget_records import ReportUsageResult, UsageOutcome
from ff.core.keys import BudgetKeys
from ff.script.library import FunctionLibrary


class _Breach(msgspec.Struct, frozen=True):
    dimension: str
    current_usage: int
    limit: int


_OUTCOMES: dict[str, UsageOutcome] = {
    "OK": "Ok", "ALREADY_APPLIED": "AlreadyApplied", "SOFT_BREACH": "SoftBreach",
    "HARD_BREACH": "HardBreach"}


def _dims_then(dimensions: list[str], *columns: list[int]) -> list[object]:
    return [len(dimensions), *dimensions, *(v for column in columns for v in column)]


async def create_budget(lib: FunctionLibrary, keys: BudgetKeys, *, scope_type: str,
                        scope_id: str, enforcement_mode: str, on_hard_limit: str,
                        on_soft_limit: str, reset_interval_ms: int, dimensions: list[str],
                        hard_limits: list[int], soft_limits: list[int]) -> bool:
    """True if this call created the budget (False: it existed)."""
    reply = await lib.call(
        "ff_create_budget", (keys.def_, keys.limits, keys.resets, keys.policies),
        (keys.budget_id, scope_type, scope_id, enforcement_mode, on_hard_limit, on_soft_limit,
         reset_interval_ms, *_dims_then(dimensions, hard_limits, soft_limits)),
    )
    return reply.status == "OK"


async def report_usage(lib: FunctionLibrary, keys: BudgetKeys, usage: dict[str, int], *,
                       execution_id: str = "", dedup_id: str = "") -> ReportUsageResult:
    dims = list(usage)
    reply = await lib.call(
        "ff_report_usage_and_check", (keys.def_, keys.limits, keys.usage),
        (execution_id, dedup_id, *_dims_then(dims, [usage[d] for d in dims])),
    )
    outcome = _OUTCOMES[reply.status]
    if not reply.values:
        return ReportUsageResult(outcome)
    breach = reply.into(_Breach)
    return ReportUsageResult(outcome, breach.dimension, breach.current_usage, breach.limit)


async def release_budget(lib: FunctionLibrary, keys: BudgetKeys, execution_id: str) -> str:
    """`released`, or `noop` when the execution had spent nothing here."""
    reply = await lib.call("ff_release_budget", (keys.def_, keys.usage), (execution_id,))
    return reply.first()


async def reset_budget(lib: FunctionLibrary, keys: BudgetKeys) -> int:
    """Zeroes the usage; the next scheduled reset (0: none)."""
    reply = await lib.call("ff_reset_budget", (keys.def_, keys.usage, keys.resets),
                           (keys.budget_id,))
    return int(reply.first())
