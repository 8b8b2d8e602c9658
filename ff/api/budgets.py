"""Budgets and quotas: the Server methods of this area land here (create_budget,
get_budget_status, report_usage, reset_budget, create_quota_policy)."""

from __future__ import annotations

from ff.api._parts import ServerParts


class BudgetsApi(ServerParts):
    """No methods yet."""
