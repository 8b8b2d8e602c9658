"""Budgets and quotas: create, read, report usage, reset, release an execution's spend,
and quota policies (admission itself runs in `ff.admission`, called by the scheduler)."""

from __future__ import annotations

from ff.api._parts import ServerParts
from ff.core.budget_records import (
    BudgetIdBody,
    BudgetStatus,
    CreateBudgetArgs,
    CreateBudgetResult,
    CreateQuotaPolicyArgs,
    CreateQuotaPolicyResult,
    QuotaIdBody,
    QuotaStatus,
    ReportUsageArgs,
    ReportUsageResult,
    ResetBody,
    ResetBudgetResult,
)
from ff.core.errors import NotFoundError, ValidationError
from ff.core.ids import ExecutionId, new_uuid, parse_uuid
from ff.core.keys import BudgetKeys, QuotaKeys
from ff.core.limits import BUDGET_DIMENSIONS_MAX, QUOTA_WINDOW_DEFAULT_S
from ff.script import budget as budget_fns
from ff.script import quota as quota_fns
from ff.script.library import text


def _decoded(raw: dict | None) -> dict[str, str]:
    return {text(k): text(v) for k, v in (raw or {}).items()}


def _optional(value: str | None) -> str | None:
    return value or None


class BudgetsApi(ServerParts):
    def _budget(self, budget_id: str) -> BudgetKeys:
        bid = parse_uuid(budget_id, "budget_id")
        return BudgetKeys(bid, self._config.partitions.budget_partition(bid))

    def _quota(self, quota_policy_id: str) -> QuotaKeys:
        qid = parse_uuid(quota_policy_id, "quota_policy_id")
        return QuotaKeys(qid, self._config.partitions.quota_partition(qid))

    async def create_budget(self, args: CreateBudgetArgs) -> CreateBudgetResult:
        """Limits of 0 are unlimited; the library checks names and amounts."""
        dims = args.dimensions
        if not 1 <= len(dims) <= BUDGET_DIMENSIONS_MAX:
            raise ValidationError("invalid_input",
                                  f"dimensions must name 1..{BUDGET_DIMENSIONS_MAX} dimensions")
        if len(args.hard_limits) != len(dims) or len(args.soft_limits) != len(dims):
            raise ValidationError("invalid_input",
                                  "hard_limits and soft_limits must be parallel to dimensions")
        keys = self._budget(args.budget_id or new_uuid())
        created = await budget_fns.create_budget(
            self.library, keys, scope_type=args.scope_type, scope_id=args.scope_id,
            enforcement_mode=args.enforcement_mode, on_hard_limit=args.on_hard_limit,
            on_soft_limit=args.on_soft_limit, reset_interval_ms=args.reset_interval_ms,
            dimensions=dims, hard_limits=args.hard_limits, soft_limits=args.soft_limits)
        body = BudgetIdBody(keys.budget_id)
        return CreateBudgetResult(Created=body) if created else CreateBudgetResult(
            AlreadySatisfied=body)

    async def get_budget_status(self, budget_id: str) -> BudgetStatus:
        keys = self._budget(budget_id)
        pipe = self._client.pipeline()
        for key in (keys.def_, keys.limits, keys.usage):
            pipe.execute_command("HGETALL", key)
        definition, limits, usage = (_decoded(r) for r in await pipe.run(raise_on_error=True))
        if not definition:
            raise NotFoundError("budget_not_found", keys.budget_id)

        def limits_of(kind: str) -> dict[str, int]:
            return {f[len(kind) + 1:]: int(v) for f, v in limits.items()
                    if f.startswith(kind + ":")}

        return BudgetStatus(
            budget_id=keys.budget_id, scope_type=definition.get("scope_type", ""),
            scope_id=definition.get("scope_id", ""),
            enforcement_mode=definition.get("enforcement_mode", ""),
            usage={d: int(v) for d, v in usage.items()},
            hard_limits=limits_of("hard"), soft_limits=limits_of("soft"),
            breach_count=int(definition.get("breach_count") or 0),
            soft_breach_count=int(definition.get("soft_breach_count") or 0),
            last_breach_at=_optional(definition.get("last_breach_at")),
            last_breach_dim=_optional(definition.get("last_breach_dim")),
            next_reset_at=_optional(definition.get("next_reset_at")),
            created_at=_optional(definition.get("created_at")),
        )

    async def report_usage(self, budget_id: str, args: ReportUsageArgs) -> ReportUsageResult:
        """Adds usage unless a hard limit would be passed (then nothing is added); a
        repeated `dedup_key` is a no-op. With `execution_id` the amounts also go to that
        execution's spend ledger (see `release_budget`)."""
        keys = self._budget(budget_id)
        if not args.dimensions:
            raise ValidationError("invalid_input", "dimensions must name at least one")
        eid = ExecutionId.parse(args.execution_id) if args.execution_id else ""
        return await budget_fns.report_usage(
            self.library, keys, args.dimensions, execution_id=eid,
            dedup_id=args.dedup_key or "")

    async def reset_budget(self, budget_id: str) -> ResetBudgetResult:
        next_reset = await budget_fns.reset_budget(self.library, self._budget(budget_id))
        return ResetBudgetResult(ResetBody(next_reset))

    async def release_budget(self, budget_id: str, execution_id: str) -> bool:
        """Gives back what `execution_id` spent from this budget; False if nothing."""
        eid = ExecutionId.parse(execution_id)
        return await budget_fns.release_budget(self.library, self._budget(budget_id),
                                               eid) == "released"

    async def create_quota_policy(self, args: CreateQuotaPolicyArgs) -> CreateQuotaPolicyResult:
        """0 for a limit means unlimited; a window of 0 means 60 s."""
        keys = self._quota(args.quota_policy_id or new_uuid())
        created = await quota_fns.create_quota_policy(
            self.library, keys, window_seconds=args.window_seconds,
            max_requests_per_window=args.max_requests_per_window,
            max_concurrent=args.max_concurrent)
        body = QuotaIdBody(keys.quota_policy_id)
        return CreateQuotaPolicyResult(Created=body) if created else CreateQuotaPolicyResult(
            AlreadySatisfied=body)

    async def get_quota_policy(self, quota_policy_id: str) -> QuotaStatus:
        keys = self._quota(quota_policy_id)
        definition = _decoded(await self._client.execute("HGETALL", keys.def_))
        if not definition:
            raise NotFoundError("quota_policy_not_found", keys.quota_policy_id)
        window_s = int(definition.get("requests_per_window_seconds") or 0)
        now_s, now_us = await self._client.execute("TIME")
        now_ms = int(now_s) * 1000 + int(now_us) // 1000
        span_ms = (window_s or QUOTA_WINDOW_DEFAULT_S) * 1000
        pipe = self._client.pipeline()
        pipe.execute_command("ZCOUNT", keys.window, f"({now_ms - span_ms}", "+inf")
        pipe.execute_command("GET", keys.concurrency)
        window_count, concurrency = await pipe.run(raise_on_error=True)
        return QuotaStatus(
            quota_policy_id=keys.quota_policy_id, window_seconds=window_s,
            max_requests_per_window=int(definition.get("max_requests_per_window") or 0),
            max_concurrent=int(definition.get("active_concurrency_cap") or 0),
            window_count=int(window_count), concurrency=int(concurrency or 0))
