"""The scheduler's one-call claim (`claim_lease`, for workers without a server) makes the
same choices as a grant followed by a claim."""

from __future__ import annotations

import pytest
import trio

from ff.core.keys import ExecKeys
from ff.core.policy import ExecutionPolicy, RoutingRequirements
from ff.script import execution as fns
from ff.server import Server
from tests.engine.conftest import core_field, fence, submit

pytestmark = [pytest.mark.compat, pytest.mark.cluster]


async def lease(server: Server, worker: str = "w1", caps: tuple[str, ...] = (), lane="default"):
    return await server.scheduler.claim_lease(
        lane_id=lane, worker_id=worker, worker_instance_id=f"{worker}-i", capabilities=caps,
        lease_ttl_ms=30_000)


async def test_fresh_resumed_and_reclaimed_leases(server: Server) -> None:
    eid = await submit(server, input_payload="x")
    first = await lease(server)
    assert first is not None
    assert (first.execution_id, first.attempt_type, first.payload) == (eid, "initial", b"x")
    assert await lease(server) is None
    now = await server.client.execute("TIME")
    await fns.delay_execution(server.library, eid, delay_until=int(now[0]) * 1000,
                              **fence(first))
    resumed = await lease(server, "w2")
    assert resumed is not None and (resumed.attempt_type, resumed.attempt_index) == ("resumed", 0)
    await server.revoke_lease(eid)
    reclaimed = await lease(server, "w3")
    assert reclaimed is not None and reclaimed.attempt_type == "reclaim"
    assert int(reclaimed.lease_epoch) == int(resumed.lease_epoch) + 1
    assert await server.client.execute("EXISTS", ExecKeys(eid).claim_grant) == 0


async def test_reclaim_cap_fails_the_execution_and_moves_on(server: Server) -> None:
    capped = await submit(server, policy=ExecutionPolicy(max_reclaim_count=0))
    await trio.sleep(0.002)
    waiting = await submit(server)
    held = await lease(server)
    assert held is not None and held.execution_id == capped
    await server.revoke_lease(capped)
    nxt = await lease(server, "w2")
    assert nxt is not None and nxt.execution_id == waiting
    assert await server.get_execution_state(capped) == "failed"
    assert await core_field(server, capped, "failure_reason") == "max_reclaims_exceeded"


async def test_capability_mismatch_is_parked_and_the_next_one_taken(server: Server) -> None:
    gpu = await submit(server, policy=ExecutionPolicy(
        routing_requirements=RoutingRequirements(required_capabilities=["gpu"])))
    await trio.sleep(0.002)
    plain = await submit(server)
    taken = await lease(server, caps=("cpu",))
    assert taken is not None and taken.execution_id == plain
    assert await core_field(server, gpu, "eligibility_state") == "blocked_by_route"


async def test_flow_partitions_are_found_through_the_window(server: Server) -> None:
    from ff.core.ids import ExecutionId

    home = server.partition_config.lane_partition("default")
    elsewhere = (home + 1) % server.partition_config.num_flow_partitions
    eid = await submit(server, execution_id=ExecutionId.mint(elsewhere))
    taken = await lease(server)
    assert taken is not None and taken.execution_id == eid
