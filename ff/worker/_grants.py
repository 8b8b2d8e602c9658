"""Where a worker's leases come from: the scheduler run in the worker itself, or claim
grants from the server's claim route.

Both answer one question, "what may this worker run next from this lane?", with up to
`count` `LeaseHandle`s. Without a server the worker runs `ff.scheduler` against Valkey and
takes grants and leases for all of them in one call (`Scheduler.claim_leases`); with a
server (one grant per request) the admission checks run at the server choke point and
the worker turns the grant into a lease itself.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

import msgspec

from ff.client import HttpClient
from ff.core.records import ClaimGrant, LeaseHandle
from ff.scheduler import Scheduler, lease_from_grant
from ff.script.library import FunctionLibrary


class LeaseSource(Protocol):
    async def next_leases(self, lane_id: str, count: int) -> list[LeaseHandle]: ...


class _Identity(msgspec.Struct, frozen=True):
    worker_id: str
    worker_instance_id: str
    capabilities: tuple[str, ...]
    grant_ttl_ms: int
    lease_ttl_ms: int


class SchedulerLeases:
    """Leases straight from `ff.scheduler.Scheduler`, run in this process against Valkey."""

    def __init__(self, scheduler: Scheduler, identity: _Identity) -> None:
        self._scheduler = scheduler
        self._id = identity

    async def next_leases(self, lane_id: str, count: int) -> list[LeaseHandle]:
        return await self._scheduler.claim_leases(
            lane_id=lane_id, worker_id=self._id.worker_id,
            worker_instance_id=self._id.worker_instance_id,
            capabilities=self._id.capabilities, lease_ttl_ms=self._id.lease_ttl_ms,
            count=count,
        )


class ServerGrants:
    """Grants from `POST /v1/workers/{worker_id}/claim` (200 with a grant, 204 for none),
    each turned into a lease in Valkey by this worker."""

    def __init__(self, http: HttpClient, library: FunctionLibrary, identity: _Identity) -> None:
        self._http = http
        self._library = library
        self._id = identity
        self._path = f"/v1/workers/{quote(identity.worker_id, safe='')}/claim"

    async def next_grant(self, lane_id: str) -> ClaimGrant | None:
        response = await self._http.request("POST", self._path, json={
            "lane_id": lane_id, "worker_instance_id": self._id.worker_instance_id,
            "grant_ttl_ms": self._id.grant_ttl_ms, "capabilities": list(self._id.capabilities),
        })
        if response.status == 204:
            return None
        grant: ClaimGrant = response.raise_for_status().json(ClaimGrant)
        return grant if grant.lane_id else msgspec.structs.replace(grant, lane_id=lane_id)

    async def next_leases(self, lane_id: str, count: int) -> list[LeaseHandle]:
        """One lease at most: the claim route grants one execution per request."""
        grant = await self.next_grant(lane_id)
        if grant is None:
            return []
        return [await lease_from_grant(
            self._library, grant, worker_id=self._id.worker_id,
            worker_instance_id=self._id.worker_instance_id, lease_ttl_ms=self._id.lease_ttl_ms,
        )]
