"""Budgets and quotas enforced at the claim, on the server's grant path and on the
worker's one-call path alike."""

from __future__ import annotations

import pytest
import trio

from ff.core.budget_records import CreateBudgetArgs, CreateQuotaPolicyArgs, ReportUsageArgs
from ff.core.errors import NotFoundError, ValidationError
from ff.core.policy import ExecutionPolicy
from ff.server import Server
from tests.engine.conftest import claim, core_field, fence, submit

pytestmark = pytest.mark.compat


async def budget(server: Server, hard: int, soft: int = 0, dim: str = "tokens") -> str:
    created = await server.create_budget(CreateBudgetArgs(
        dimensions=[dim], hard_limits=[hard], soft_limits=[soft]))
    assert created.Created is not None
    return created.Created.budget_id


async def quota(server: Server, *, window: int = 1, rate: int = 0, concurrent: int = 0) -> str:
    created = await server.create_quota_policy(CreateQuotaPolicyArgs(
        window_seconds=window, max_requests_per_window=rate, max_concurrent=concurrent))
    assert created.Created is not None
    return created.Created.quota_policy_id


async def direct(server: Server, worker: str = "w1"):
    return await server.scheduler.claim_lease(
        lane_id="default", worker_id=worker, worker_instance_id=f"{worker}-i",
        lease_ttl_ms=30_000)


async def report(server: Server, bid: str, amount: int, dedup: str | None = None):
    return await server.report_usage(bid, ReportUsageArgs(dimensions={"tokens": amount},
                                                          dedup_key=dedup))


async def test_hard_breach_applies_nothing_and_soft_breach_applies(server: Server) -> None:
    bid = await budget(server, hard=100, soft=50)
    assert (await report(server, bid, 40)).outcome == "Ok"
    soft = await report(server, bid, 20)
    assert (soft.outcome, soft.dimension, soft.current_usage, soft.limit) == (
        "SoftBreach", "tokens", 60, 50)
    hard = await report(server, bid, 41)
    assert (hard.outcome, hard.current_usage, hard.limit) == ("HardBreach", 60, 100)
    assert (await report(server, bid, 40)).outcome == "SoftBreach"
    assert (await report(server, bid, 1)).outcome == "HardBreach"
    status = await server.get_budget_status(bid)
    assert status.usage == {"tokens": 100}
    assert (status.breach_count, status.soft_breach_count) == (2, 2)
    assert status.last_breach_dim == "tokens"


async def test_dedup_key_makes_a_retried_report_a_no_op(server: Server) -> None:
    bid = await budget(server, hard=0)
    assert (await report(server, bid, 7, "r1")).outcome == "Ok"
    assert (await report(server, bid, 7, "r1")).outcome == "AlreadyApplied"
    assert (await report(server, bid, 7, "r2")).outcome == "Ok"
    assert (await server.get_budget_status(bid)).usage == {"tokens": 14}


async def test_bad_budget_input_writes_nothing(server: Server) -> None:
    before = await server.client.execute("DBSIZE")
    with pytest.raises(ValidationError):
        await server.create_budget(CreateBudgetArgs(
            dimensions=["a", "b"], hard_limits=[1], soft_limits=[1, 2]))
    with pytest.raises(ValidationError):
        await server.create_budget(CreateBudgetArgs(
            dimensions=["a"], hard_limits=[-1], soft_limits=[0]))
    assert await server.client.execute("DBSIZE") == before
    bid = await budget(server, hard=10)
    before = await server.client.execute("DBSIZE")
    with pytest.raises(ValidationError):
        await server.report_usage(bid, ReportUsageArgs(dimensions={"tokens": -3}))
    with pytest.raises(NotFoundError):
        await report(server, "00000000-0000-4000-8000-000000000000", 1)
    with pytest.raises(ValidationError):
        await server.create_quota_policy(CreateQuotaPolicyArgs(max_concurrent=-1))
    assert (await server.get_budget_status(bid)).usage == {}
    assert await server.client.execute("DBSIZE") == before


async def test_unknown_budget_or_quota_refuses_the_execution(server: Server) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFoundError):
        await submit(server, policy=ExecutionPolicy(budget_ids=[unknown]))
    with pytest.raises(NotFoundError):
        await submit(server, policy=ExecutionPolicy(quota_policy_id=unknown))


@pytest.mark.parametrize("path", ["grant", "direct"])
async def test_exhausted_budget_blocks_until_reset(server: Server, path: str) -> None:
    bid = await budget(server, hard=10)
    eid = await submit(server, policy=ExecutionPolicy(budget_ids=[bid]))
    assert await core_field(server, eid, "budget_ids") == bid
    assert (await report(server, bid, 10)).outcome == "Ok"
    take = (lambda: claim(server)) if path == "grant" else (lambda: direct(server))
    assert await take() is None
    assert await server.get_execution_state(eid) == "rate_limited"
    assert await core_field(server, eid, "blocking_reason") == "waiting_for_budget"
    assert "tokens 10/10" in await core_field(server, eid, "blocking_detail")
    await server.reset_budget(bid)
    assert await server.engine.scanner("unblock").run_once() == 1
    lease = await take()
    assert lease is not None and lease.execution_id == eid


@pytest.mark.parametrize("path", ["grant", "direct"])
async def test_budget_block_gives_the_quota_slot_back(server: Server, path: str) -> None:
    """Budget reads and the quota check share a round trip: a budget block found after the
    quota admitted the execution must not leave its concurrency slot taken."""
    bid = await budget(server, hard=10)
    qid = await quota(server, window=60, concurrent=1)
    eid = await submit(server, policy=ExecutionPolicy(budget_ids=[bid], quota_policy_id=qid))
    assert (await report(server, bid, 10)).outcome == "Ok"
    take = (lambda: claim(server)) if path == "grant" else (lambda: direct(server))
    assert await take() is None
    assert await core_field(server, eid, "blocking_reason") == "waiting_for_budget"
    assert (await server.get_quota_policy(qid)).concurrency == 0
    await server.reset_budget(bid)
    assert await server.engine.scanner("unblock").run_once() == 1
    lease = await take()
    assert lease is not None and lease.execution_id == eid
    assert (await server.get_quota_policy(qid)).concurrency == 1


@pytest.mark.parametrize("path", ["grant", "direct"])
async def test_concurrency_cap_holds_and_ending_releases(server: Server, path: str) -> None:
    qid = await quota(server, window=60, concurrent=2)
    eids = [await submit(server, policy=ExecutionPolicy(quota_policy_id=qid))
            for _ in range(3)]
    take = (lambda w: claim(server, w)) if path == "grant" else (lambda w: direct(server, w))
    first, second = await take("w1"), await take("w2")
    assert first is not None and second is not None
    assert await take("w3") is None
    blocked = next(e for e in eids if e not in (first.execution_id, second.execution_id))
    assert await server.get_execution_state(blocked) == "rate_limited"
    assert (await server.get_quota_policy(qid)).concurrency == 2
    await server.scheduler.admission.release(first.execution_id, qid)
    status = await server.get_quota_policy(qid)
    assert (status.concurrency, status.window_count) == (1, 2)
    assert await server.engine.scanner("unblock").run_once() == 1
    third = await take("w3")
    assert third is not None and third.execution_id == blocked


async def test_rate_window_admits_once_per_execution(server: Server) -> None:
    qid = await quota(server, window=1, rate=2)
    for _ in range(3):
        await submit(server, policy=ExecutionPolicy(quota_policy_id=qid))
    assert await direct(server, "a") is not None
    assert await direct(server, "b") is not None
    assert await direct(server, "c") is None
    assert (await server.get_quota_policy(qid)).window_count == 2
    await trio.sleep(1.05)
    assert await server.engine.scanner("unblock").run_once() == 1
    assert await direct(server, "c") is not None


async def test_flow_budgets_reach_every_member(server: Server) -> None:
    from ff.core.flow_records import AddExecutionToFlowArgs, CreateFlowArgs
    from ff.core.records import CreateExecutionArgs

    bid = await budget(server, hard=5)
    other = await budget(server, hard=0)
    flow = await server.create_flow(CreateFlowArgs(budget_ids=[bid]))
    assert flow.Created is not None
    added = await server.add_execution_to_flow(flow.Created.flow_id, AddExecutionToFlowArgs(
        execution=CreateExecutionArgs(execution_kind="llm",
                                      policy=ExecutionPolicy(budget_ids=[other]))))
    assert added.Added is not None
    member = added.Added.execution_id
    assert await core_field(server, member, "budget_ids") == f"{other},{bid}"
    await report(server, bid, 5)
    assert await direct(server) is None
    assert await server.get_execution_state(member) == "rate_limited"


async def test_admitted_claim_lease_carries_the_quota(server: Server) -> None:
    qid = await quota(server, concurrent=1)
    await submit(server, policy=ExecutionPolicy(quota_policy_id=qid))
    lease = await direct(server)
    assert lease is not None and lease.quota_policy_id == qid
    from ff.script import execution as fns
    await fns.complete_execution(server.library, lease.execution_id, **fence(lease))
    assert (await server.get_quota_policy(qid)).concurrency == 1  # until released
