"""Scheduling and leases from the operator's and the claim route's side: claim grants,
reclaim grants and lease revocation."""

from __future__ import annotations

from ff.api._parts import ServerParts
from ff.core.errors import FFError
from ff.core.ids import ExecutionId, validate_lane, validate_worker_id
from ff.core.policy import capabilities_csv
from ff.core.records import ClaimGrant, ReclaimGrantArgs, ReclaimGrantResult, RevokeResult
from ff.scheduler import check_grant_ttl
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns


class SchedulingApi(ServerParts):
    async def revoke_lease(self, execution_id: str, *, reason: str = "operator_revoke"
                           ) -> RevokeResult:
        eid = ExecutionId.parse(execution_id)
        try:
            return await lease_fns.revoke_lease(self.library, eid, reason=reason)
        except FFError as exc:
            # Not active (waiting, terminal, ...) has no lease to revoke either.
            if exc.code in ("no_active_lease", "execution_not_active"):
                return RevokeResult("already_satisfied", reason="no_active_lease")
            raise

    async def issue_reclaim_grant(self, execution_id: str, args: ReclaimGrantArgs
                                  ) -> ReclaimGrantResult:
        eid = ExecutionId.parse(execution_id)
        validate_worker_id(args.worker_id, "worker_id")
        validate_worker_id(args.worker_instance_id, "worker_instance_id")
        validate_lane(args.lane_id)
        check_grant_ttl(args.grant_ttl_ms)
        return await scheduling_fns.issue_reclaim_grant(
            self.library, eid, worker_id=args.worker_id,
            worker_instance_id=args.worker_instance_id, lane_id=args.lane_id,
            grant_ttl_ms=args.grant_ttl_ms,
            worker_caps_csv=capabilities_csv(args.worker_capabilities, "worker"),
            capability_hash=args.capability_hash or "",
            route_snapshot_json=args.route_snapshot_json or "",
            admission_summary=args.admission_summary or "",
        )

    async def claim_for_worker(
        self, *, lane_id: str, worker_id: str, worker_instance_id: str,
        capabilities: list[str] | tuple[str, ...] = (), grant_ttl_ms: int = 5_000,
    ) -> ClaimGrant | None:
        return await self.scheduler.claim_for_worker(
            lane_id=lane_id, worker_id=worker_id, worker_instance_id=worker_instance_id,
            capabilities=capabilities, grant_ttl_ms=grant_ttl_ms,
        )
