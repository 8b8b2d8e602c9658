"""Admission with real workers, with and without `server_url`: spend stops at the hard
limit and held members run after a reset; quota caps hold under concurrency."""

from __future__ import annotations

from functools import partial

import pytest
import trio

from ff.core.budget_records import CreateBudgetArgs, CreateQuotaPolicyArgs
from ff.core.flow_records import AddExecutionToFlowArgs, CreateFlowArgs
from ff.core.keys import QuotaKeys
from ff.core.policy import ExecutionPolicy
from ff.core.records import CreateExecutionArgs
from ff.http import serve_http
from ff.http.routes import build_app
from ff.server import Server
from ff.worker import ClaimedTask
from tests.worker.conftest import make_worker, running, submit, wait_for_state


async def unblocking(server: Server, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """The unblock scanner at a short interval (the test servers run no scanners)."""
    task_status.started()
    while True:
        await server.engine.scanner("unblock").run_once()
        await trio.sleep(0.05)


async def api_url(server: Server, nursery: trio.Nursery) -> str:
    port = await nursery.start(partial(serve_http, build_app(server), "127.0.0.1", 0,
                                       shutdown_grace=0.5))
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("via_server", [False, True])
async def test_flow_spend_stops_at_the_hard_limit_and_resumes_after_reset(
        server: Server, server_url: str, nursery: trio.Nursery, via_server: bool) -> None:
    bid = (await server.create_budget(CreateBudgetArgs(
        dimensions=["tokens"], hard_limits=[100], soft_limits=[0]))).Created.budget_id
    flow = (await server.create_flow(CreateFlowArgs(budget_ids=[bid]))).Created.flow_id
    members = []
    for _ in range(4):
        added = await server.add_execution_to_flow(flow, AddExecutionToFlowArgs(
            execution=CreateExecutionArgs(execution_kind="llm")))
        members.append(added.Added.execution_id)
    extra = {"server_url": await api_url(server, nursery)} if via_server else {}
    worker = make_worker(server_url, max_concurrent=1, **extra)
    outcomes: list[str] = []

    @worker.handler("llm")
    async def llm(task: ClaimedTask, payload: object) -> None:
        outcomes.append((await task.report_usage({"tokens": 50})).outcome)

    async with running(worker):
        done = [m for m in members if await wait_for_state(
            server, m, "completed", "rate_limited") == "completed"]
        while len(done) < 2:
            await trio.sleep(0.02)
            done = [m for m in members if await server.get_execution_state(m) == "completed"]
        held = [m for m in members if m not in done]
        for m in held:
            assert await wait_for_state(server, m, "rate_limited") == "rate_limited"
        assert (await server.get_budget_status(bid)).usage == {"tokens": 100}
        await server.reset_budget(bid)
        nursery.start_soon(unblocking, server)
        for m in held:
            await wait_for_state(server, m, "completed")
    assert outcomes == ["Ok"] * 4
    assert (await server.get_budget_status(bid)).usage == {"tokens": 100}


async def test_hard_breach_reports_and_applies_nothing(server: Server, server_url: str) -> None:
    bid = (await server.create_budget(CreateBudgetArgs(
        dimensions=["tokens", "cost_micros"], hard_limits=[100, 0],
        soft_limits=[80, 0]))).Created.budget_id
    eid = await submit(server, "llm", policy=ExecutionPolicy(budget_ids=[bid]))
    worker = make_worker(server_url)
    seen = []

    @worker.handler("llm")
    async def llm(task: ClaimedTask, payload: object) -> None:
        while True:
            result = await task.report_usage({"tokens": 30, "cost_micros": 7})
            seen.append(result.outcome)
            if result.hard_breach:
                await task.fail("budget exhausted", "budget_exceeded", retryable=False)
                return

    async with running(worker):
        await wait_for_state(server, eid, "failed")
    assert seen == ["Ok", "Ok", "SoftBreach", "HardBreach"]
    assert (await server.get_budget_status(bid)).usage == {"tokens": 90, "cost_micros": 21}


@pytest.mark.slow
@pytest.mark.parametrize("via_server", [False, True])
async def test_concurrency_cap_is_never_exceeded(server: Server, server_url: str,
                                                 nursery: trio.Nursery, via_server: bool) -> None:
    qid = (await server.create_quota_policy(CreateQuotaPolicyArgs(
        window_seconds=60, max_concurrent=3))).Created.quota_policy_id
    eids = [await submit(server, "job", policy=ExecutionPolicy(quota_policy_id=qid))
            for _ in range(50)]
    extra = {"server_url": await api_url(server, nursery)} if via_server else {}
    workers = [make_worker(server_url, worker_id=f"w{i}", max_concurrent=4, **extra)
               for i in range(2)]
    running_now, peak = 0, 0

    async def job(task: ClaimedTask, payload: object) -> None:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        await trio.sleep(0.05)  # long enough for the cap to fill on a loaded host
        running_now -= 1

    for w in workers:
        w.handler("job")(job)
    await nursery.start(unblocking, server)
    async with running(workers[0]), running(workers[1]):
        for eid in eids:
            await wait_for_state(server, eid, "completed", timeout=30)
    assert peak == 3
    assert (await server.get_quota_policy(qid)).concurrency == 0


@pytest.mark.slow
async def test_rate_quota_admits_exactly_its_rate_per_window(server: Server,
                                                             nursery: trio.Nursery) -> None:
    """Checked on the admission times the window records: a lease comes a few ms after
    its admission, so lease times may sit closer together than one window."""
    qid = (await server.create_quota_policy(CreateQuotaPolicyArgs(
        window_seconds=1, max_requests_per_window=10))).Created.quota_policy_id
    window_key = QuotaKeys(qid, server.config.partitions.quota_partition(qid)).window
    for _ in range(60):
        await submit(server, "job", policy=ExecutionPolicy(quota_policy_id=qid))
    await nursery.start(unblocking, server)
    admitted: dict[str, int] = {}

    async def claimer(i: int) -> None:
        while True:
            lease = await server.scheduler.claim_lease(
                lane_id="default", worker_id=f"c{i}", worker_instance_id=f"c{i}",
                lease_ttl_ms=60_000)
            if lease is not None:
                score = await server.client.execute("ZSCORE", window_key, lease.execution_id)
                admitted[lease.execution_id] = int(float(score))
            await trio.sleep(0.01)

    with trio.move_on_after(3.5):
        async with trio.open_nursery() as claimers:
            for i in range(200):
                claimers.start_soon(claimer, i)
    times = sorted(admitted.values())
    assert 30 <= len(times) <= 40
    for first, eleventh in zip(times, times[10:], strict=False):
        assert eleventh - first >= 1000  # never 11 admissions within one window
