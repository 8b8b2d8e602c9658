"""Budget and quota records that cross a boundary (Server API, HTTP, client).

Field names follow the reference wire format; ids and `now` are optional (the server mints
ids and uses its own clock). Externally tagged results are one Struct with one optional
field per variant, exactly one of them set; bare variants (`"Ok"`, `"AlreadyApplied"`)
are plain strings on the wire.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from ff.core.millis import Millis


class CreateBudgetArgs(msgspec.Struct, kw_only=True):
    """`hard_limits` and `soft_limits` are parallel to `dimensions`; 0 means unlimited."""

    budget_id: str | None = None
    scope_type: str = ""
    scope_id: str = ""
    enforcement_mode: str = "strict"
    on_hard_limit: str = "fail"
    on_soft_limit: str = "warn"
    reset_interval_ms: int = 0
    dimensions: list[str] = msgspec.field(default_factory=list)
    hard_limits: list[int] = msgspec.field(default_factory=list)
    soft_limits: list[int] = msgspec.field(default_factory=list)
    now: Millis | None = None


class BudgetIdBody(msgspec.Struct):
    budget_id: str


class CreateBudgetResult(msgspec.Struct, omit_defaults=True):
    """201 `{"Created": {"budget_id"}}` / 200 `{"AlreadySatisfied": {"budget_id"}}`."""

    Created: BudgetIdBody | None = None
    AlreadySatisfied: BudgetIdBody | None = None


class BudgetStatus(msgspec.Struct):
    budget_id: str
    scope_type: str
    scope_id: str
    enforcement_mode: str
    usage: dict[str, int]
    hard_limits: dict[str, int]
    soft_limits: dict[str, int]
    breach_count: int
    soft_breach_count: int
    last_breach_at: str | None
    last_breach_dim: str | None
    next_reset_at: str | None
    created_at: str | None


class ReportUsageArgs(msgspec.Struct, kw_only=True):
    """`dimensions`: dimension -> amount to add (an integer >= 0)."""

    dimensions: dict[str, int]
    now: Millis | None = None
    dedup_key: str | None = None
    execution_id: str | None = None


UsageOutcome = Literal["Ok", "SoftBreach", "HardBreach", "AlreadyApplied"]


class ReportUsageResult(msgspec.Struct, frozen=True):
    """What a usage report did. `HardBreach` applied nothing; `SoftBreach` applied the
    report and names the first dimension above its soft limit."""

    outcome: UsageOutcome
    dimension: str | None = None
    current_usage: int | None = None
    limit: int | None = None

    @property
    def hard_breach(self) -> bool:
        return self.outcome == "HardBreach"

    @classmethod
    def from_wire(cls, answer: object) -> ReportUsageResult:
        """The inverse of `wire`."""
        if answer in ("Ok", "AlreadyApplied"):
            return cls(answer)
        if not isinstance(answer, dict) or len(answer) != 1:
            raise ValueError(f"not a usage report answer: {answer!r:.200}")
        [(outcome, body)] = answer.items()
        limit = body.get("soft_limit", body.get("hard_limit"))
        return cls(outcome, body["dimension"], body["current_usage"], limit)

    def wire(self) -> object:
        """The reference's shape: `"Ok"`, `"AlreadyApplied"`, or
        `{"SoftBreach": {dimension, current_usage, soft_limit}}` /
        `{"HardBreach": {dimension, current_usage, hard_limit}}`."""
        if self.outcome in ("Ok", "AlreadyApplied"):
            return self.outcome
        limit_field = "soft_limit" if self.outcome == "SoftBreach" else "hard_limit"
        return {self.outcome: {"dimension": self.dimension,
                               "current_usage": self.current_usage, limit_field: self.limit}}


class ResetBody(msgspec.Struct):
    next_reset_at: int


class ResetBudgetResult(msgspec.Struct):
    """200 `{"Reset": {"next_reset_at"}}` (0: the budget has no reset interval)."""

    Reset: ResetBody


class CreateQuotaPolicyArgs(msgspec.Struct, kw_only=True):
    """0 means: default window (60 s) / unlimited."""

    quota_policy_id: str | None = None
    window_seconds: int = 0
    max_requests_per_window: int = 0
    max_concurrent: int = 0
    now: Millis | None = None


class QuotaIdBody(msgspec.Struct):
    quota_policy_id: str


class CreateQuotaPolicyResult(msgspec.Struct, omit_defaults=True):
    Created: QuotaIdBody | None = None
    AlreadySatisfied: QuotaIdBody | None = None


class QuotaStatus(msgspec.Struct):
    """`GET /v1/quotas/{id}`: the policy and its live counts (window_count: admissions in
    the current window)."""

    quota_policy_id: str
    window_seconds: int
    max_requests_per_window: int
    max_concurrent: int
    window_count: int
    concurrency: int
