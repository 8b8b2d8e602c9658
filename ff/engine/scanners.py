"""The lifecycle scanners: each finds due items in a partition index and hands them to
the library function that re-checks and acts on them.

| scanner            | reads                                   | calls                         |
|--------------------|-----------------------------------------|-------------------------------|
| lease_expiry       | ff:idx:{fp:N}:lease_expiry              | ff_mark_lease_expired_if_due  |
| delayed_promoter   | ff:idx:{fp:N}:lane:<lane>:delayed       | ff_promote_delayed            |
| attempt_timeout    | ff:idx:{fp:N}:attempt_timeout           | ff_expire_execution           |
| execution_deadline | ff:idx:{fp:N}:execution_deadline        | ff_expire_execution           |
| unblock            | ff:idx:{fp:N}:lane:<lane>:blocked:route | ff_unblock_execution          |
|                    | (and :blocked:budget, :blocked:quota)   |                               |
| retention_trimmer  | ff:idx:{fp:N}:lane:<lane>:terminal      | ff_purge_execution            |
| index_reconciler   | ff:idx:{fp:N}:all_executions            | ff_reconcile_indexes          |
| lane_hints         | eligible/reclaimable heads per lane     | ZINCRBY on the lane's hints   |

The waitpoint scanners (suspension_timeout, pending_wp_expiry) are in `ff.engine.waitpoints`,
the budget and quota scanners (and the unblock scanner's part for them) in
`ff.engine.admission`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod

from ff import metrics
from ff.core.keys import ExecKeys, IndexKeys, WorkerKeys
from ff.engine.admission import (
    BudgetReconciler,
    BudgetResetScanner,
    QuotaReconciler,
    unblock_admitted,
)
from ff.engine.flows import FLOW_SCANNER_TYPES
from ff.engine.lane_hints import LaneHintScanner
from ff.engine.runner import Scanner, pipelined
from ff.script import execution as execution_fns
from ff.script import indexes as indexes_fns
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import text

log = logging.getLogger("ff.engine")

DUE_BATCH = 50

INDEX_INCONSISTENCIES = metrics.Counter(
    "ff_index_inconsistency_total",
    "Executions the index reconciler found outside the index their state implies.",
    ("kind",),
)


class _DueScanner(Scanner):
    """Items whose score (a due time) has passed in one ZSET per partition (and lane)."""

    batch = DUE_BATCH

    @abstractmethod
    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        """(index key, lane) pairs to read in one partition."""

    def cutoff(self, now_ms: int) -> int:
        return now_ms

    @abstractmethod
    async def handle(self, eid: str, lane: str) -> None:
        """Implemented by each subclass."""

    async def cycle(self, now_ms: int) -> int:
        lanes = await self.engine.known_lanes()
        targets = [
            pair
            for p in range(self.engine.partitions.num_flow_partitions)
            for pair in self.keys_for(p, lanes)
        ]
        cutoff = self.cutoff(now_ms)
        replies = await pipelined(self.client, [
            ("ZRANGE", key, "-inf", cutoff, "BYSCORE", "LIMIT", 0, self.batch)
            for key, _ in targets
        ])
        handled = 0
        for (_, lane), members in zip(targets, replies, strict=True):
            for raw in members:
                eid = text(raw)
                if await self.act(eid, lambda eid=eid, lane=lane: self.handle(eid, lane)):
                    handled += 1
        return handled


class LeaseExpiryScanner(_DueScanner):
    name = "lease_expiry"

    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        return [(IndexKeys(partition).lease_expiry, "")]

    async def handle(self, eid: str, lane: str) -> None:
        await lease_fns.mark_lease_expired_if_due(self.library, eid)


class DelayedPromoter(_DueScanner):
    name = "delayed_promoter"

    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        idx = IndexKeys(partition)
        return [(idx.lane(lane, "delayed"), lane) for lane in lanes]

    async def handle(self, eid: str, lane: str) -> None:
        await scheduling_fns.promote_delayed(self.library, eid, lane)


class AttemptTimeoutScanner(_DueScanner):
    name = "attempt_timeout"

    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        return [(IndexKeys(partition).attempt_timeout, "")]

    async def handle(self, eid: str, lane: str) -> None:
        await execution_fns.expire_execution(self.library, eid, "attempt_timeout")


class ExecutionDeadlineScanner(_DueScanner):
    name = "execution_deadline"

    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        return [(IndexKeys(partition).execution_deadline, "")]

    async def handle(self, eid: str, lane: str) -> None:
        await execution_fns.expire_execution(self.library, eid, "execution_deadline")


class RetentionTrimmer(_DueScanner):
    """Purges terminal executions once their retention has passed.

    The terminal set is scored by terminal time; retention can differ per execution
    (stream_policy.retention_ttl_ms), so the library decides and answers `not_due` for
    ones to keep. The batch is small because each purge deletes many keys.
    """

    name = "retention_trimmer"
    batch = 20

    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        idx = IndexKeys(partition)
        return [(idx.lane(lane, "terminal"), lane) for lane in lanes]

    async def handle(self, eid: str, lane: str) -> None:
        await execution_fns.purge_execution(
            self.library, eid, lane_id=lane,
            default_retention_ms=self.engine.config.retention_default_ms,
        )


class UnblockScanner(Scanner):
    """Brings route-blocked executions back once a live worker in their namespace has
    every required capability. Fails open: if worker capabilities cannot be read, the
    execution is unblocked and the scheduler re-blocks it if needed. Budget- and
    quota-blocked executions: `ff.engine.admission.unblock_admitted` (fails closed)."""

    name = "unblock"
    batch = 100

    async def cycle(self, now_ms: int) -> int:
        return await self._route_cycle() + await unblock_admitted(self, now_ms)

    async def _route_cycle(self) -> int:
        lanes = await self.engine.known_lanes()
        targets = [
            (IndexKeys(p).lane(lane, "blocked:route"), lane)
            for p in range(self.engine.partitions.num_flow_partitions)
            for lane in lanes
        ]
        replies = await pipelined(
            self.client, [("ZRANGE", key, 0, self.batch - 1) for key, _ in targets]
        )
        candidates = [
            (text(eid), lane)
            for (_, lane), members in zip(targets, replies, strict=True)
            for eid in members
        ]
        if not candidates:
            return 0
        records = await pipelined(self.client, [
            ("HMGET", ExecKeys(eid).core, "namespace", "required_capabilities")
            for eid, _ in candidates
        ])
        unions: dict[str, set[str] | None] = {}
        handled = 0
        for (eid, lane), (namespace, required) in zip(candidates, records, strict=True):
            ns = text(namespace)
            if ns not in unions:
                unions[ns] = await self._live_capabilities(ns)
            live = unions[ns]
            needed = set(filter(None, text(required).split(",")))
            if live is not None and not needed <= live:
                continue
            if await self.act(eid, lambda eid=eid, lane=lane: scheduling_fns.unblock_execution(
                    self.library, eid, "waiting_for_capable_worker", lane)):
                handled += 1
        return handled

    async def _live_capabilities(self, namespace: str) -> set[str] | None:
        """Union of the capabilities of live workers in `namespace` (None: unknown)."""
        keys = WorkerKeys(namespace)
        try:
            instances = [text(i) async for i in self.client.sscan_iter(keys.index)]
            if not instances:
                return set()
            rows = await pipelined(self.client, [
                ("HGET", keys.caps(i), "caps_csv") for i in instances
            ])
        except Exception as exc:
            log.warning("unblock: cannot read workers of %r: %s", namespace, exc)
            return None
        union: set[str] = set()
        stale = []
        for instance, caps in zip(instances, rows, strict=True):
            if caps is None:
                stale.append(instance)
            else:
                union.update(filter(None, text(caps).split(",")))
        if stale:
            await self.client.execute("SREM", keys.index, *stale)
        return union


class IndexReconciler(Scanner):
    """Checks that every execution sits in the lane index its state implies, a page of
    100 per call, and repairs what is missing. Check and repair are one atomic call, so
    executions moving while the scan runs are never reported; what it reports is drift
    (a bug, or a write lost to a crash between two partial states)."""

    name = "index_reconciler"
    page_size = 100

    async def cycle(self, now_ms: int) -> int:
        checked = 0
        for p in range(self.engine.partitions.num_flow_partitions):
            after = ""
            while True:
                page = await indexes_fns.reconcile_indexes(
                    self.library, p, after=after, page_size=self.page_size)
                checked += page.checked
                for eid, problem in page.problems.items():
                    INDEX_INCONSISTENCIES.labels(kind=problem).inc()
                    if problem == "missing_core":
                        log.warning("index_reconciler: %s has no core record", eid)
                    else:
                        log.warning("index_reconciler: %s was missing from its %s index "
                                    "(added back)", eid, problem)
                if not page.next_after:
                    break
                after = page.next_after
        return checked


SCANNER_TYPES: tuple[type[Scanner], ...] = (
    LeaseExpiryScanner,
    DelayedPromoter,
    AttemptTimeoutScanner,
    ExecutionDeadlineScanner,
    UnblockScanner,
    RetentionTrimmer,
    IndexReconciler,
    BudgetResetScanner,
    BudgetReconciler,
    QuotaReconciler,
    *FLOW_SCANNER_TYPES,
    LaneHintScanner,
)
