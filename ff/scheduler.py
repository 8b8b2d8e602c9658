"""claim_for_worker: which execution a worker gets next, as a claim grant.

Used by the server's claim route and by workers that run without a server. A lane's solo
executions are spread over many partitions, so per call it asks the partitions the lane's
work hints name (a ZSET under the lane's home tag, read at most every 100 ms and shared
by the process's claimers, in a random order so claimers spread out); a partition that
has nothing is dropped from the hints unless it was marked again meanwhile. When the
hints find nothing it falls back to a window of up to 32 partitions that starts at a
per-worker offset and rotates every 250 ms, so work the hints miss (a mark lost with its
producer) is still reached within a few windows, and marks the partition it finds work
on. One FCALL per partition grants the first execution the worker may take (lost leases
first, then eligible work), FIFO within priority in that partition. An execution
that carries budgets or a quota goes through `ff.admission` between its grant and its
lease, on both paths.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import msgspec
import trio

from ff.admission import Admission, Attachments
from ff.core.errors import ContentionError, FFError, ValidationError
from ff.core.ids import new_uuid, validate_lane, validate_worker_id
from ff.core.keys import IndexKeys, lane_work_hint
from ff.core.limits import GRANT_TTL_MAX_MS, GRANT_TTL_MIN_MS
from ff.core.partitions import PartitionConfig, fnv1a_64
from ff.core.policy import capabilities_csv
from ff.core.records import ClaimGrant, LeaseHandle
from ff.script import lanes as lane_fns
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import FunctionLibrary

MAX_PARTITIONS_PER_SCAN = 32
ROTATION_WINDOW_MS = 250
# Executions refused admission one partition may offer in a row before the next is asked.
ADMISSION_TRIES = 4
# Grant TTL of the one-call path's admission stop: admission plus the claim fit well within.
ADMISSION_GRANT_TTL_MS = 5_000
HINT_REFRESH_S = 0.1
HINTS_PER_READ = 16

T = TypeVar("T")


class Scheduler:
    def __init__(
        self,
        client,
        library: FunctionLibrary,
        partitions: PartitionConfig,
        *,
        max_partitions_per_scan: int = MAX_PARTITIONS_PER_SCAN,
    ) -> None:
        self.client = client
        self.library = library
        self.partitions = partitions
        self.max_partitions_per_scan = max_partitions_per_scan
        self._window = -1
        self._cursor = 0
        self.admission = Admission(client, library, partitions)
        self._hints: dict[str, tuple[float, list[tuple[int, float]]]] = {}

    def window(self, worker_instance_id: str) -> list[int]:
        """This worker's rotating window of partitions (other workers start elsewhere)."""
        n = self.partitions.num_flow_partitions
        window = int(trio.current_time() * 1000) // ROTATION_WINDOW_MS
        if window != self._window:
            self._window = window
            self._cursor = (self._cursor + self.max_partitions_per_scan) % n
        start = (fnv1a_64(worker_instance_id.encode()) & 0xFFFF) % n
        first = (start + self._cursor) % n
        return [(first + i) % n for i in range(min(self.max_partitions_per_scan, n))]

    def _validate(self, lane_id: str, worker_id: str, worker_instance_id: str,
                  capabilities: Iterable[str]) -> str:
        validate_lane(lane_id)
        validate_worker_id(worker_id, "worker_id")
        validate_worker_id(worker_instance_id, "worker_instance_id")
        return capabilities_csv(list(capabilities), "worker")

    async def _hinted(self, lane_id: str) -> list[tuple[int, float]]:
        """(partition, score) pairs the lane's hints name, cached for a moment."""
        now = trio.current_time()
        cached = self._hints.get(lane_id)
        if cached is not None and cached[0] > now and cached[1]:
            return cached[1]
        home = self.partitions.lane_partition(lane_id)
        raw = await self.client.execute("ZRANDMEMBER", lane_work_hint(lane_id, home),
                                        HINTS_PER_READ, "WITHSCORES")
        pairs = _pairs(raw)
        self._hints[lane_id] = (now + HINT_REFRESH_S, pairs)
        return pairs

    async def _first(
        self, lane_id: str, worker_instance_id: str,
        ask: Callable[[int], Awaitable[T | None]],
    ) -> T | None:
        """Asks the hinted partitions in a random order, then the window's partitions
        that have work (one pipelined read of their heads), until one answers."""
        hinted = await self._hinted(lane_id)
        home = self.partitions.lane_partition(lane_id)
        for partition, score in random.sample(hinted, len(hinted)):
            found = await ask(partition)
            if found is not None:
                return found
            if (partition, score) in hinted:
                hinted.remove((partition, score))
                await lane_fns.drop_lane_hint(self.library, lane_id, home,
                                              partition=partition, score=score)
        window = self.window(worker_instance_id)
        pipe = self.client.pipeline()
        for p in window:
            idx = IndexKeys(p)
            pipe.execute_command("ZRANGE", idx.lane(lane_id, "reclaimable"), 0, 0)
            pipe.execute_command("ZRANGE", idx.lane(lane_id, "eligible"), 0, 0)
        heads = await pipe.run(raise_on_error=True)
        for i, p in enumerate(window):
            if heads[2 * i] or heads[2 * i + 1]:
                found = await ask(p)
                if found is not None:
                    await mark_lane_work(self.client, self.partitions, lane_id, p)
                    return found
        return None

    async def claim_for_worker(
        self,
        *,
        lane_id: str,
        worker_id: str,
        worker_instance_id: str,
        capabilities: Iterable[str] = (),
        grant_ttl_ms: int = 5_000,
    ) -> ClaimGrant | None:
        """A grant for the best execution this worker may run, or None when there is none."""
        caps_csv = self._validate(lane_id, worker_id, worker_instance_id, capabilities)
        check_grant_ttl(grant_ttl_ms)

        async def grant_in(partition: int) -> ClaimGrant | None:
            for _ in range(ADMISSION_TRIES):
                nxt = await scheduling_fns.issue_grant_for_next(
                    self.library, partition, lane_id=lane_id, worker_id=worker_id,
                    worker_instance_id=worker_instance_id, grant_ttl_ms=grant_ttl_ms,
                    worker_caps_csv=caps_csv)
                if nxt is None:
                    return None
                if await self._admit(nxt):
                    return nxt.grant
            return None

        return await self._first(lane_id, worker_instance_id, grant_in)

    async def claim_lease(
        self,
        *,
        lane_id: str,
        worker_id: str,
        worker_instance_id: str,
        capabilities: Iterable[str] = (),
        lease_ttl_ms: int,
    ) -> LeaseHandle | None:
        """Grant and lease in one call per partition (`ff_claim_next`), for a worker that
        runs the scheduler itself: the same choice as `claim_for_worker` followed by
        `lease_from_grant`, one round trip instead of two."""
        caps_csv = self._validate(lane_id, worker_id, worker_instance_id, capabilities)

        async def lease_in(partition: int) -> LeaseHandle | None:
            return await self._lease_in(partition, lane_id, worker_id, worker_instance_id,
                                        caps_csv, lease_ttl_ms)

        return await self._first(lane_id, worker_instance_id, lease_in)

    async def claim_leases(
        self,
        *,
        lane_id: str,
        worker_id: str,
        worker_instance_id: str,
        capabilities: Iterable[str] = (),
        lease_ttl_ms: int,
        count: int,
    ) -> list[LeaseHandle]:
        """Up to `count` leases in one call (`ff_claim_batch`), from the first partition
        that has work, in the order `claim_lease` would take them one by one. A batch
        stops at an execution that carries budgets or a quota; when it stopped before any
        lease, that execution goes through `claim_lease` (admission, then its lease)."""
        caps_csv = self._validate(lane_id, worker_id, worker_instance_id, capabilities)

        async def leases_in(partition: int) -> list[LeaseHandle] | None:
            ids = [(new_uuid(), new_uuid()) for _ in range(count)]
            batch = await scheduling_fns.claim_batch(
                self.library, partition, lane_id=lane_id, worker_id=worker_id,
                worker_instance_id=worker_instance_id, worker_caps_csv=caps_csv,
                lease_ttl_ms=lease_ttl_ms, ids=ids)
            if batch.leases or not batch.needs_admission:
                return batch.leases or None
            lease = await self._lease_in(partition, lane_id, worker_id, worker_instance_id,
                                         caps_csv, lease_ttl_ms)
            return [lease] if lease is not None else None

        return await self._first(lane_id, worker_instance_id, leases_in) or []

    async def _lease_in(self, partition: int, lane_id: str, worker_id: str,
                        worker_instance_id: str, caps_csv: str,
                        lease_ttl_ms: int) -> LeaseHandle | None:
        """One lease from `partition` in one call, or through admission first for an
        execution that carries budgets or a quota."""
        for _ in range(ADMISSION_TRIES):
            got = await scheduling_fns.claim_next(
                self.library, partition, lane_id=lane_id, worker_id=worker_id,
                worker_instance_id=worker_instance_id, worker_caps_csv=caps_csv,
                lease_id=new_uuid(), lease_ttl_ms=lease_ttl_ms,
                attempt_id=new_uuid(), grant_ttl_ms=ADMISSION_GRANT_TTL_MS)
            if not isinstance(got, scheduling_fns.NextGrant):
                return got
            if await self._admit(got):
                return await self._lease_admitted(got, worker_id, worker_instance_id,
                                                  lease_ttl_ms)
        return None

    async def _admit(self, nxt: scheduling_fns.NextGrant) -> bool:
        """Budget and quota admission for a granted execution (blocked when refused)."""
        attached = Attachments.of(nxt.grant.execution_id, nxt.budget_ids, nxt.quota_policy_id)
        return not attached or await self.admission.admit(attached)

    async def _lease_admitted(self, nxt: scheduling_fns.NextGrant, worker_id: str,
                              worker_instance_id: str, lease_ttl_ms: int) -> LeaseHandle:
        """The lease for an admitted grant; the quota slot goes back if the claim fails."""
        try:
            return await lease_from_grant(self.library, nxt.grant, worker_id=worker_id,
                                          worker_instance_id=worker_instance_id,
                                          lease_ttl_ms=lease_ttl_ms)
        except FFError:
            await self.admission.release(nxt.grant.execution_id, nxt.quota_policy_id)
            raise


def _pairs(raw: object) -> list[tuple[int, float]]:
    """(partition, score) from ZRANDMEMBER ... WITHSCORES: [[member, score], ...] (RESP3)
    or a flat list (RESP2)."""
    if not isinstance(raw, list) or not raw:
        return []
    flat = [x for pair in raw for x in pair] if isinstance(raw[0], list) else raw
    return [(int(flat[i]), float(flat[i + 1])) for i in range(0, len(flat) - 1, 2)]


async def mark_lane_work(client, partitions: PartitionConfig, lane_id: str,
                         partition: int) -> None:
    """Names `partition` in the lane's work hints (a new mark, so a scheduler that read
    an older one will not drop it)."""
    await client.execute("ZINCRBY", lane_work_hint(lane_id, partitions.lane_partition(lane_id)),
                         1, partition)


def check_grant_ttl(grant_ttl_ms: int) -> None:
    """The one validation of a grant TTL in Python (the library applies the same bounds)."""
    if not GRANT_TTL_MIN_MS <= grant_ttl_ms <= GRANT_TTL_MAX_MS:
        raise ValidationError(
            "invalid_input", f"grant_ttl_ms must be in {GRANT_TTL_MIN_MS}..{GRANT_TTL_MAX_MS}")


def new_worker_instance_id() -> str:
    return f"wi-{uuid.uuid4()}"


async def lease_from_grant(
    library: FunctionLibrary,
    grant: ClaimGrant,
    *,
    worker_id: str,
    worker_instance_id: str,
    lease_ttl_ms: int,
) -> LeaseHandle:
    """Turns a grant into a lease: reclaim, fresh claim, or resume of an interrupted
    attempt (the library says which when the fresh claim does not apply)."""
    lease_id, attempt_id = new_uuid(), new_uuid()

    async def take(claim: Callable[..., Awaitable[LeaseHandle]]) -> LeaseHandle:
        return await claim(library, grant.execution_id, worker_id=worker_id,
                           worker_instance_id=worker_instance_id, lease_id=lease_id,
                           lease_ttl_ms=lease_ttl_ms, attempt_id=attempt_id)

    if grant.kind == "reclaim":
        lease = await take(lease_fns.reclaim_execution)
    else:
        try:
            lease = await take(lease_fns.claim_execution)
        except ContentionError as exc:
            if exc.code != "use_claim_resumed_execution":
                raise
            lease = await take(lease_fns.claim_resumed_execution)
    if grant.quota_policy_id:
        return msgspec.structs.replace(lease, quota_policy_id=grant.quota_policy_id)
    return lease
