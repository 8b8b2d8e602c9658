"""Budget and quota admission: the step between a claim grant and its lease.

An execution lives on `{fp:N}`, its budgets on `{b:M}` and its quota on `{q:K}`; one Lua
call may touch one tag only, so admission is a sequence, run by `ff.scheduler` for the
server's claim route and for workers that schedule themselves alike:

1. a grant is issued on the execution's partition (it names the attached budgets/quota);
2. every attached budget is read: usage at or above a hard limit blocks the execution
   (`waiting_for_budget`);
3. the quota admits it (one slot of the sliding window, one concurrency slot) or it is
   blocked (`waiting_for_quota`);
4. the caller turns the grant into a lease; if that fails, the quota slot is released.

Blocking deletes the grant and moves the execution to `blocked:budget` / `blocked:quota`
(public state `rate_limited`); the unblock scanner brings it back. Read errors raise: the
claim fails rather than hand out work unchecked (fail closed).
"""

from __future__ import annotations

import logging

import msgspec

from ff import metrics
from ff.core.errors import FFError, NotFoundError
from ff.core.keys import BudgetKeys, QuotaKeys
from ff.core.partitions import PartitionConfig
from ff.resp.errors import RespError
from ff.script import quota as quota_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import FunctionLibrary, text

log = logging.getLogger("ff.admission")

BUDGET_HITS = metrics.Counter(
    "ff_budget_hit_total", "Claims refused because a budget's hard limit was reached.",
    ("dimension",))
QUOTA_HITS = metrics.Counter(
    "ff_quota_hit_total", "Claims refused by a quota policy.", ("reason",))


class Attachments(msgspec.Struct, frozen=True):
    """The budgets and quota an execution carries (from its core record)."""

    execution_id: str
    budget_ids: tuple[str, ...] = ()
    quota_policy_id: str = ""

    @classmethod
    def of(cls, execution_id: str, budget_ids_csv: str, quota_policy_id: str) -> Attachments:
        return cls(execution_id, tuple(filter(None, budget_ids_csv.split(","))),
                   quota_policy_id)

    def __bool__(self) -> bool:
        return bool(self.budget_ids or self.quota_policy_id)


def budget_breach(limits: dict[str, str], usage: dict[str, str]) -> tuple[str, int, int] | None:
    """The first dimension whose usage reached its hard limit (limits <= 0: unlimited)."""
    for field, raw in limits.items():
        if not field.startswith("hard:"):
            continue
        limit = int(raw)
        dim = field[5:]
        used = int(usage.get(dim, 0))
        if limit > 0 and used >= limit:
            return dim, used, limit
    return None


def quota_room(definition: dict[str, str], window_count: int, concurrency: int) -> float:
    """How many more executions a quota would admit now (inf: no limit)."""
    room = float("inf")
    rate = int(definition.get("max_requests_per_window") or 0)
    cap = int(definition.get("active_concurrency_cap") or 0)
    if rate > 0:
        room = min(room, rate - window_count)
    if cap > 0:
        room = min(room, cap - concurrency)
    return max(room, 0)


class Admission:
    def __init__(self, client, library: FunctionLibrary, partitions: PartitionConfig) -> None:
        self.client = client
        self.library = library
        self.partitions = partitions

    def budget_keys(self, budget_id: str) -> BudgetKeys:
        return BudgetKeys(budget_id, self.partitions.budget_partition(budget_id))

    def quota_keys(self, quota_policy_id: str) -> QuotaKeys:
        return QuotaKeys(quota_policy_id, self.partitions.quota_partition(quota_policy_id))

    def _budget_reads(self, budget_ids: tuple[str, ...]) -> list[tuple[str, str]]:
        reads = []
        for bid in budget_ids:
            keys = self.budget_keys(bid)
            reads += [("HGETALL", keys.limits), ("HGETALL", keys.usage)]
        return reads

    @staticmethod
    def _budget_pairs(replies: list[object]) -> list[tuple[dict[str, str], dict[str, str]]]:
        decoded = [{text(k): text(v) for k, v in (r or {}).items()}  # type: ignore[attr-defined]
                   for r in replies]
        return [(decoded[i], decoded[i + 1]) for i in range(0, len(decoded), 2)]

    async def budget_states(self, budget_ids: tuple[str, ...]
                            ) -> list[tuple[dict[str, str], dict[str, str]]]:
        """(limits, usage) of each budget, in one pipelined read."""
        pipe = self.client.pipeline()
        for command in self._budget_reads(budget_ids):
            pipe.execute_command(*command)
        return self._budget_pairs(await pipe.run(raise_on_error=True))

    async def _budget_block(self, attached: Attachments,
                            states: list[tuple[dict[str, str], dict[str, str]]]) -> bool:
        """Blocks the execution when one of its budgets reached a hard limit."""
        for bid, (limits, usage) in zip(attached.budget_ids, states, strict=True):
            breach = budget_breach(limits, usage)
            if breach is not None:
                dim, used, limit = breach
                BUDGET_HITS.labels(dimension=dim).inc()
                await self._block(attached, "waiting_for_budget",
                                  f"budget {bid}: {dim} {used}/{limit}")
                return True
        return False

    async def admit(self, attached: Attachments) -> bool:
        """True when the execution may run now; otherwise it has been blocked.

        With budgets and a quota, the budget reads and the quota check share one round
        trip; a budget block found afterwards gives the quota's concurrency slot back (the
        admission stays counted in the quota's current window: fewer admissions, never
        more)."""
        qid = attached.quota_policy_id
        if not qid:
            if attached.budget_ids:
                return not await self._budget_block(
                    attached, await self.budget_states(attached.budget_ids))
            return True
        try:
            replies, verdict = await quota_fns.check_admission_after_reads(
                self.library, self._budget_reads(attached.budget_ids), self.quota_keys(qid),
                attached.execution_id)
        except NotFoundError:
            await self._block(attached, "waiting_for_quota", f"quota {qid}: no such policy")
            return False
        if attached.budget_ids and await self._budget_block(attached,
                                                            self._budget_pairs(replies)):
            if verdict.admitted:
                await self.release(attached.execution_id, qid)
            return False
        if verdict.admitted:
            return True
        if verdict.status == "RATE_EXCEEDED":
            QUOTA_HITS.labels(reason="rate").inc()
            detail = f"quota {qid}: rate limit, retry after {verdict.retry_after_ms} ms"
        else:
            QUOTA_HITS.labels(reason="concurrency").inc()
            detail = f"quota {qid}: concurrency {verdict.concurrency}/{verdict.cap}"
        await self._block(attached, "waiting_for_quota", detail)
        return False

    async def _block(self, attached: Attachments, reason: str, detail: str) -> None:
        await scheduling_fns.block_for_admission(
            self.library, attached.execution_id, reason, detail)

    async def release(self, execution_id: str, quota_policy_id: str) -> None:
        """Gives back the execution's concurrency slot (idempotent; a failure is left to
        the quota_reconciler)."""
        if not quota_policy_id:
            return
        try:
            await quota_fns.release_admission(
                self.library, self.quota_keys(quota_policy_id), execution_id)
        except (FFError, RespError) as exc:
            log.warning("release of %s's quota slot failed (the reconciler will): %s",
                        execution_id, exc)


async def require_attachments(client, partitions: PartitionConfig, budget_ids: list[str],
                              quota_policy_id: str | None) -> None:
    """Refuses (404) budgets or a quota policy that do not exist, before anything that
    would carry them is written."""
    keys = [BudgetKeys(b, partitions.budget_partition(b)).def_ for b in budget_ids]
    if quota_policy_id:
        keys.append(QuotaKeys(quota_policy_id, partitions.quota_partition(quota_policy_id)).def_)
    if not keys:
        return
    pipe = client.pipeline()
    for key in keys:
        pipe.execute_command("EXISTS", key)
    found = await pipe.run(raise_on_error=True)
    for bid, exists in zip(budget_ids, found, strict=False):
        if not exists:
            raise NotFoundError("budget_not_found", bid)
    if quota_policy_id and not found[-1]:
        raise NotFoundError("quota_policy_not_found", quota_policy_id)
