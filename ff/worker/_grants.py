"""Where a worker's claim grants come from: the server's claim route, or the scheduler run
in the worker itself.

Both answer one question, "may this worker take something from this lane?", with a
`ClaimGrant` or None. With a server the admission checks run at the server choke point;
without one the worker runs the same `ff.scheduler` code against Valkey. Turning a grant
into a lease is not done here (that is always the worker's own call to Valkey).
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

import msgspec

from ff.client import HttpClient
from ff.core.records import ClaimGrant
from ff.scheduler import Scheduler


class GrantSource(Protocol):
    async def next_grant(self, lane_id: str) -> ClaimGrant | None: ...


class _Identity(msgspec.Struct, frozen=True):
    worker_id: str
    worker_instance_id: str
    capabilities: tuple[str, ...]
    grant_ttl_ms: int


class SchedulerGrants:
    """Grants from `ff.scheduler.Scheduler`, run in this process against Valkey."""

    def __init__(self, scheduler: Scheduler, identity: _Identity) -> None:
        self._scheduler = scheduler
        self._id = identity

    async def next_grant(self, lane_id: str) -> ClaimGrant | None:
        return await self._scheduler.claim_for_worker(
            lane_id=lane_id, worker_id=self._id.worker_id,
            worker_instance_id=self._id.worker_instance_id,
            capabilities=self._id.capabilities, grant_ttl_ms=self._id.grant_ttl_ms,
        )


class ServerGrants:
    """Grants from `POST /v1/workers/{worker_id}/claim`: 200 with a grant, 204 for none."""

    def __init__(self, http: HttpClient, identity: _Identity) -> None:
        self._http = http
        self._id = identity
        self._path = f"/v1/workers/{quote(identity.worker_id, safe='')}/claim"

    async def next_grant(self, lane_id: str) -> ClaimGrant | None:
        response = await self._http.request("POST", self._path, json={
            "lane_id": lane_id, "worker_instance_id": self._id.worker_instance_id,
            "grant_ttl_ms": self._id.grant_ttl_ms, "capabilities": list(self._id.capabilities),
        })
        if response.status == 204:
            return None
        grant = response.raise_for_status().json(ClaimGrant)
        return grant if grant.lane_id else msgspec.structs.replace(grant, lane_id=lane_id)
