"""claim_for_worker: which execution a worker gets next, as a claim grant.

Used by the server's claim route and by workers that run without a server. Per call it
asks the lane's home partition (where solo executions of the lane live) first, then a
window of up to 32 partitions that starts at a per-worker offset and rotates every 250 ms,
so workers spread out and every partition is reached within a few windows. One FCALL per
partition grants the first execution the worker may take (lost leases first, then
eligible work).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import trio

from ff.core.errors import ContentionError, ValidationError
from ff.core.ids import new_uuid, validate_lane, validate_worker_id
from ff.core.keys import IndexKeys
from ff.core.limits import GRANT_TTL_MAX_MS, GRANT_TTL_MIN_MS
from ff.core.partitions import PartitionConfig, fnv1a_64
from ff.core.policy import capabilities_csv
from ff.core.records import ClaimGrant, LeaseHandle
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import FunctionLibrary

MAX_PARTITIONS_PER_SCAN = 32
ROTATION_WINDOW_MS = 250

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

    async def _first(
        self, lane_id: str, worker_instance_id: str,
        ask: Callable[[int], Awaitable[T | None]],
    ) -> T | None:
        """Asks the lane's home partition, then the window's partitions that have work
        (found with one pipelined read of their heads), until one answers."""
        home = self.partitions.lane_partition(lane_id)
        found = await ask(home)
        if found is not None:
            return found
        window = [p for p in self.window(worker_instance_id) if p != home]
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
            return await scheduling_fns.issue_grant_for_next(
                self.library, partition, lane_id=lane_id, worker_id=worker_id,
                worker_instance_id=worker_instance_id, grant_ttl_ms=grant_ttl_ms,
                worker_caps_csv=caps_csv)

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
            return await scheduling_fns.claim_next(
                self.library, partition, lane_id=lane_id, worker_id=worker_id,
                worker_instance_id=worker_instance_id, worker_caps_csv=caps_csv,
                lease_id=new_uuid(), lease_ttl_ms=lease_ttl_ms,
                attempt_id=new_uuid())

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
        that has work, in the order `claim_lease` would take them one by one."""
        caps_csv = self._validate(lane_id, worker_id, worker_instance_id, capabilities)

        async def leases_in(partition: int) -> list[LeaseHandle] | None:
            ids = [(new_uuid(), new_uuid()) for _ in range(count)]
            leases = await scheduling_fns.claim_batch(
                self.library, partition, lane_id=lane_id, worker_id=worker_id,
                worker_instance_id=worker_instance_id, worker_caps_csv=caps_csv,
                lease_ttl_ms=lease_ttl_ms, ids=ids)
            return leases or None

        return await self._first(lane_id, worker_instance_id, leases_in) or []


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
        return await take(lease_fns.reclaim_execution)
    try:
        return await take(lease_fns.claim_execution)
    except ContentionError as exc:
        if exc.code != "use_claim_resumed_execution":
            raise
    return await take(lease_fns.claim_resumed_execution)
