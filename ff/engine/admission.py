"""Scanners of budgets and quotas, and the unblock scanner's budget and quota parts.

| scanner           | reads                            | calls                          |
|-------------------|----------------------------------|--------------------------------|
| budget_reset      | ff:idx:{b:M}:budget_resets (due) | ff_reset_budget                |
| budget_reconciler | ff:idx:{b:M}:budget_policies     | SREM of ids of deleted budgets |
| quota_reconciler  | ff:idx:{q:K}:quota_policies      | ff_release_admission,          |
|                   |                                  | ff_reconcile_quota             |
| unblock (part)    | ff:idx:{fp:N}:lane:<lane>:       | ff_unblock_execution           |
|                   | blocked:budget, blocked:quota    |                                |

The quota reconciler gives back the slots of admitted executions that no longer run
(ended, or their grant lapsed) once their admission guard has expired, so a worker that
died before releasing cannot hold a slot for ever. Reads that fail keep executions
blocked (fail closed).
"""

from __future__ import annotations

import logging

from ff.admission import Admission, budget_breach, quota_room
from ff.core.keys import (
    ExecKeys,
    IndexKeys,
    budget_policies_index,
    budget_resets_index,
    quota_policies_index,
)
from ff.core.limits import QUOTA_WINDOW_DEFAULT_S
from ff.engine.runner import Scanner, pipelined
from ff.script import budget as budget_fns
from ff.script import quota as quota_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import text

log = logging.getLogger("ff.engine")

UNBLOCK_BATCH = 100
RESET_BATCH = 20


def _admission(scanner: Scanner) -> Admission:
    return Admission(scanner.client, scanner.library, scanner.engine.partitions)


class BudgetResetScanner(Scanner):
    name = "budget_reset"

    async def cycle(self, now_ms: int) -> int:
        admission = _admission(self)
        handled = 0
        for p in range(self.engine.partitions.num_budget_partitions):
            due = await self.client.execute("ZRANGE", budget_resets_index(p), "-inf", now_ms,
                                            "BYSCORE", "LIMIT", 0, RESET_BATCH)
            for raw in due:
                bid = text(raw)
                if await self.act(bid, lambda bid=bid: budget_fns.reset_budget(
                        self.library, admission.budget_keys(bid))):
                    handled += 1
        return handled


class BudgetReconciler(Scanner):
    """Drops ids from the budget index whose budget no longer exists."""

    name = "budget_reconciler"

    async def cycle(self, now_ms: int) -> int:
        admission = _admission(self)
        removed = 0
        for p in range(self.engine.partitions.num_budget_partitions):
            index = budget_policies_index(p)
            ids = [text(b) async for b in self.client.sscan_iter(index)]
            if not ids:
                continue
            exists = await pipelined(self.client, [
                ("EXISTS", admission.budget_keys(b).def_) for b in ids])
            gone = [b for b, e in zip(ids, exists, strict=True) if not e]
            if gone:
                removed += await self.client.execute("SREM", index, *gone)
        return removed


class QuotaReconciler(Scanner):
    name = "quota_reconciler"

    async def cycle(self, now_ms: int) -> int:
        admission = _admission(self)
        repaired = 0
        for p in range(self.engine.partitions.num_quota_partitions):
            index = quota_policies_index(p)
            for raw in await self.client.execute("SMEMBERS", index):
                keys = admission.quota_keys(text(raw))
                repaired += await self._release_stale(admission, keys.quota_policy_id)
                repair = await quota_fns.reconcile_quota(self.library, keys)
                if repair is None:
                    await self.client.execute("SREM", index, keys.quota_policy_id)
                elif repair.counter_before != repair.counter_after:
                    log.warning("quota_reconciler: %s concurrency %d -> %d",
                                keys.quota_policy_id, repair.counter_before,
                                repair.counter_after)
                    repaired += 1
        return repaired

    async def _release_stale(self, admission: Admission, qid: str) -> int:
        """Releases admitted executions that neither hold a lease nor a grant, once their
        admission guard has lapsed."""
        keys = admission.quota_keys(qid)
        admitted = [text(e) async for e in self.client.sscan_iter(keys.admitted_set)]
        if not admitted:
            return 0
        guards = await pipelined(self.client, [("EXISTS", keys.admitted(e)) for e in admitted])
        unguarded = [e for e, g in zip(admitted, guards, strict=True) if not g]
        if not unguarded:
            return 0
        states = await pipelined(self.client, [
            cmd for e in unguarded for cmd in (
                ("HGET", ExecKeys(e).core, "ownership_state"),
                ("EXISTS", ExecKeys(e).claim_grant))])
        released = 0
        for i, eid in enumerate(unguarded):
            if text(states[2 * i] or b"") == "leased" or states[2 * i + 1]:
                continue
            await admission.release(eid, qid)
            released += 1
        return released


async def unblock_admitted(scanner: Scanner, now_ms: int) -> int:
    """The unblock scanner's budget and quota parts: executions whose budgets are below
    their hard limits again, and as many quota-blocked ones as the quota has room for."""
    lanes = await scanner.engine.known_lanes()
    targets = [
        (IndexKeys(p).lane(lane, index), lane, reason)
        for p in range(scanner.engine.partitions.num_flow_partitions)
        for lane in lanes
        for index, reason in (("blocked:budget", "waiting_for_budget"),
                              ("blocked:quota", "waiting_for_quota"))
    ]
    replies = await pipelined(scanner.client, [
        ("ZRANGE", key, 0, UNBLOCK_BATCH - 1) for key, _, _ in targets])
    candidates = [(text(eid), lane, reason)
                  for (_, lane, reason), members in zip(targets, replies, strict=True)
                  for eid in members]
    if not candidates:
        return 0
    cores = await pipelined(scanner.client, [
        ("HMGET", ExecKeys(eid).core, "budget_ids", "quota_policy_id")
        for eid, _, _ in candidates])
    room = _Room(_admission(scanner), now_ms)
    handled = 0
    for (eid, lane, reason), (budgets, quota) in zip(candidates, cores, strict=True):
        if reason == "waiting_for_budget":
            ready = await room.budgets_ok(tuple(filter(None, text(budgets or b"").split(","))))
        else:
            ready = await room.take_quota_slot(text(quota or b""))
        if ready and await scanner.act(eid, lambda eid=eid, lane=lane, reason=reason: (
                scheduling_fns.unblock_execution(scanner.library, eid, reason, lane))):
            handled += 1
    return handled


class _Room:
    """What budgets and quotas allow, read once per cycle; a failed read is no room."""

    def __init__(self, admission: Admission, now_ms: int) -> None:
        self._admission = admission
        self._now_ms = now_ms
        self._breached: dict[str, bool] = {}
        self._free: dict[str, float] = {}

    async def budgets_ok(self, budget_ids: tuple[str, ...]) -> bool:
        unknown = tuple(b for b in budget_ids if b not in self._breached)
        if unknown:
            try:
                states = await self._admission.budget_states(unknown)
            except Exception as exc:
                log.warning("unblock: cannot read budgets %s: %s", unknown, exc)
                return False
            for bid, (limits, usage) in zip(unknown, states, strict=True):
                self._breached[bid] = budget_breach(limits, usage) is not None
        return not any(self._breached[b] for b in budget_ids)

    async def take_quota_slot(self, qid: str) -> bool:
        if not qid:
            return True
        if qid not in self._free:
            self._free[qid] = await self._quota_room(qid)
        if self._free[qid] < 1:
            return False
        self._free[qid] -= 1
        return True

    async def _quota_room(self, qid: str) -> float:
        keys = self._admission.quota_keys(qid)
        try:
            definition, concurrency = await pipelined(self._admission.client, [
                ("HGETALL", keys.def_), ("GET", keys.concurrency)])
            fields = {text(k): text(v) for k, v in (definition or {}).items()}
            if not fields:
                return 0
            seconds = int(fields.get("requests_per_window_seconds") or 0)
            since = self._now_ms - (seconds or QUOTA_WINDOW_DEFAULT_S) * 1000
            counted = await self._admission.client.execute(
                "ZCOUNT", keys.window, f"({since}", "+inf")
        except Exception as exc:
            log.warning("unblock: cannot read quota %s: %s", qid, exc)
            return 0
        return quota_room(fields, int(counted), int(concurrency or 0))
