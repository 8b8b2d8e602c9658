"""A claimed task's side of budgets and quotas: usage reports and the release of its
quota slot when the attempt stops running."""

from __future__ import annotations

import trio

from ff.admission import Admission
from ff.core.budget_records import ReportUsageResult
from ff.core.errors import FFError, ValidationError
from ff.core.ids import parse_uuid
from ff.core.keys import ExecKeys
from ff.resp import errors as resp_errors
from ff.script import budget as budget_fns
from ff.script.library import text
from ff.transient import is_transient

# Transport failures a report rides out (the dedup key makes each retry safe).
REPORT_TRIES = 4
REPORT_BACKOFF_S = 0.05
# The worst outcome of a report to several budgets wins.
_SEVERITY = {"AlreadyApplied": 0, "Ok": 1, "SoftBreach": 2, "HardBreach": 3}


class TaskSpend:
    def __init__(self, admission: Admission, execution_id: str, attempt_index: int,
                 quota_policy_id: str) -> None:
        self._admission = admission
        self._eid = execution_id
        self._attempt = attempt_index
        self._quota = quota_policy_id
        self._budgets: list[str] | None = None
        self._reports = 0

    async def _own_budgets(self) -> list[str]:
        if self._budgets is None:
            raw = await self._admission.client.execute("HGET", ExecKeys(self._eid).core,
                                                       "budget_ids")
            self._budgets = [b for b in text(raw or b"").split(",") if b]
        return self._budgets

    async def report(self, usage: dict[str, int], budget_id: str | None,
                     dedup_key: str | None) -> ReportUsageResult:
        self._reports += 1
        key = dedup_key or f"{self._eid}:{self._attempt}:{self._reports}"
        budgets = [parse_uuid(budget_id, "budget_id")] if budget_id else await self._own_budgets()
        if not budgets:
            raise ValidationError("invalid_input", "the execution carries no budget")
        worst: ReportUsageResult | None = None
        for bid in budgets:
            result = await self._report_one(bid, usage, f"{bid}:{key}")
            if worst is None or _SEVERITY[result.outcome] > _SEVERITY[worst.outcome]:
                worst = result
        assert worst is not None
        return worst

    async def _report_one(self, budget_id: str, usage: dict[str, int], dedup_id: str
                          ) -> ReportUsageResult:
        keys = self._admission.budget_keys(budget_id)
        for attempt in range(REPORT_TRIES):
            try:
                return await budget_fns.report_usage(
                    self._admission.library, keys, usage, execution_id=self._eid,
                    dedup_id=dedup_id)
            except (FFError, resp_errors.RespError) as exc:
                if not is_transient(exc) or attempt == REPORT_TRIES - 1:
                    raise
                await trio.sleep(REPORT_BACKOFF_S * 2 ** attempt)
        raise AssertionError("unreachable")

    async def release(self) -> None:
        await self._admission.release(self._eid, self._quota)
