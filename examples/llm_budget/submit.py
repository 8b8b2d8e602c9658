"""Creates a token budget and a 5-per-second quota, submits a flow of 12 `llm_call`s that
share both, waits until the budget has stopped the flow, resets the budget and waits for
the rest. Run `ff serve` and `ff worker worker` in this directory first.

    python submit.py [--server http://127.0.0.1:9090] [--token TOKEN] [--calls 12]
"""

from __future__ import annotations

import argparse
import json
import os

import trio

from ff.client import ApiClient
from ff.core.budget_records import CreateBudgetArgs, CreateQuotaPolicyArgs
from ff.core.flow_records import AddExecutionToFlowArgs, CreateFlowArgs
from ff.core.policy import ExecutionPolicy
from ff.core.records import CreateExecutionArgs

TOKEN_LIMIT = 2_000  # eight calls of 250 tokens
DONE = {"completed", "failed", "cancelled", "expired", "skipped"}
HELD = DONE | {"rate_limited"}


async def states(api: ApiClient, eids: list[str]) -> list[str]:
    return [await api.get_execution_state(eid) for eid in eids]


async def settle(api: ApiClient, eids: list[str], allowed: set[str]) -> list[str]:
    """Waits until every call is in one of `allowed` states."""
    with trio.fail_after(60):
        while not set(now := await states(api, eids)) <= allowed:
            await trio.sleep(0.2)
    return now


def tally(now: list[str]) -> str:
    return ", ".join(f"{now.count(s)} {s}" for s in sorted(set(now)))


async def main(url: str = "http://127.0.0.1:9090", token: str | None = None,
               calls: int = 12) -> None:
    async with ApiClient(url, token=token) as api:
        budget = await api.create_budget(CreateBudgetArgs(
            dimensions=["tokens"], hard_limits=[TOKEN_LIMIT], soft_limits=[TOKEN_LIMIT // 2],
            scope_type="flow"))
        quota = await api.create_quota_policy(CreateQuotaPolicyArgs(
            window_seconds=1, max_requests_per_window=5))
        assert budget.Created is not None and quota.Created is not None
        budget_id, quota_id = budget.Created.budget_id, quota.Created.quota_policy_id
        flow = await api.create_flow(CreateFlowArgs(flow_kind="llm_budget",
                                                    budget_ids=[budget_id]))
        assert flow.Created is not None
        flow_id = flow.Created.flow_id
        print(f"budget {budget_id}: {TOKEN_LIMIT} tokens; quota {quota_id}: 5 per second")
        eids = []
        for i in range(calls):
            added = await api.add_execution_to_flow(flow_id, AddExecutionToFlowArgs(
                execution=CreateExecutionArgs(
                    execution_kind="llm_call", payload_encoding="json",
                    input_payload=json.dumps({"prompt": f"chapter {i + 1}"}),
                    policy=ExecutionPolicy(quota_policy_id=quota_id))))
            eids.append(added.execution_id)
        print(f"flow {flow_id}: {calls} calls")
        # Held means: done, or waiting for the budget (the scheduler stopped handing out).
        with trio.fail_after(60):
            while True:
                now = await settle(api, eids, HELD)
                used = (await api.get_budget_status(budget_id)).usage.get("tokens", 0)
                if used >= TOKEN_LIMIT or set(now) <= DONE:
                    break
                await trio.sleep(0.2)
        print(f"budget reached: {used}/{TOKEN_LIMIT} tokens; calls: {tally(now)}")
        starts = sorted([int((await api.get_execution(eid)).started_at or 0)
                         for eid, state in zip(eids, now, strict=True) if state in DONE])
        if len(starts) > 1:
            pace = (len(starts) - 1) / max((starts[-1] - starts[0]) / 1000, 0.001)
            print(f"quota pace: {len(starts)} calls started at {pace:.1f} per second")
        await api.reset_budget(budget_id)
        print("budget reset")
        now = await settle(api, eids, DONE)
        used = (await api.get_budget_status(budget_id)).usage.get("tokens", 0)
        print(f"after the reset: {used}/{TOKEN_LIMIT} tokens; calls: {tally(now)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:9090")
    parser.add_argument("--token", default=os.environ.get("FF_API_TOKEN"))
    parser.add_argument("--calls", type=int, default=12)
    cli = parser.parse_args()
    trio.run(main, cli.server, cli.token, cli.calls)
