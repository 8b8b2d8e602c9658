"""The budget and quota routes: reference wire shapes, and 4xx JSON that writes nothing
for bad input."""

from __future__ import annotations

import pytest

from ff.client import ApiClient, HttpStatusError
from ff.core.budget_records import CreateBudgetArgs, CreateQuotaPolicyArgs, ReportUsageArgs
from tests.api.conftest import Api, api, client, writes

__all__ = ["api", "client"]
pytestmark = pytest.mark.compat

UNKNOWN = "00000000-0000-4000-8000-000000000000"


async def test_budget_routes(client: ApiClient) -> None:
    created = await client.create_budget(CreateBudgetArgs(
        dimensions=["tokens"], hard_limits=[10], soft_limits=[5], scope_type="flow"))
    assert created.Created is not None
    bid = created.Created.budget_id
    again = await client.create_budget(CreateBudgetArgs(
        budget_id=bid, dimensions=["tokens"], hard_limits=[10], soft_limits=[5]))
    assert again.AlreadySatisfied is not None
    raw = await client.request("POST", f"/v1/budgets/{bid}/usage",
                               json={"dimensions": {"tokens": 3}})
    assert raw.json() == "Ok"
    raw = await client.request("POST", f"/v1/budgets/{bid}/usage",
                               json={"dimensions": {"tokens": 8}})
    assert raw.json() == {"HardBreach": {"dimension": "tokens", "current_usage": 3,
                                         "hard_limit": 10}}
    soft = await client.report_usage(bid, ReportUsageArgs(dimensions={"tokens": 3},
                                                          dedup_key="d"))
    assert (soft.outcome, soft.limit) == ("SoftBreach", 5)
    dup = await client.report_usage(bid, ReportUsageArgs(dimensions={"tokens": 3},
                                                         dedup_key="d"))
    assert dup.outcome == "AlreadyApplied"
    status = await client.get_budget_status(bid)
    assert (status.usage, status.hard_limits, status.scope_type) == (
        {"tokens": 6}, {"tokens": 10}, "flow")
    assert (await client.reset_budget(bid)).Reset.next_reset_at == 0
    assert (await client.get_budget_status(bid)).usage == {}


async def test_quota_routes(client: ApiClient) -> None:
    created = await client.create_quota_policy(CreateQuotaPolicyArgs(
        window_seconds=2, max_requests_per_window=5, max_concurrent=0))
    assert created.Created is not None
    status = await client.get_quota_policy(created.Created.quota_policy_id)
    assert (status.window_seconds, status.max_requests_per_window, status.max_concurrent,
            status.window_count, status.concurrency) == (2, 5, 0, 0, 0)


@pytest.mark.parametrize("method, path, body, status", [
    ("POST", "/v1/budgets", {"dimensions": ["a", "b"], "hard_limits": [1],
                             "soft_limits": [1, 1]}, 400),
    ("POST", "/v1/budgets", {"dimensions": ["a"], "hard_limits": [1.5],
                             "soft_limits": [0]}, 400),
    ("POST", "/v1/budgets", {"dimensions": ["a"], "hard_limits": [-1],
                             "soft_limits": [0]}, 400),
    ("POST", "/v1/budgets", {"dimensions": [], "hard_limits": [], "soft_limits": []}, 400),
    ("POST", f"/v1/budgets/{UNKNOWN}/usage", {"dimensions": {"a": 1}}, 404),
    ("POST", "/v1/budgets/not-a-uuid/usage", {"dimensions": {"a": 1}}, 400),
    ("POST", f"/v1/budgets/{UNKNOWN}/reset", None, 404),
    ("GET", f"/v1/budgets/{UNKNOWN}", None, 404),
    ("POST", "/v1/quotas", {"max_concurrent": -2}, 400),
    ("POST", "/v1/quotas", {"window_seconds": "x"}, 400),
    ("GET", f"/v1/quotas/{UNKNOWN}", None, 404),
    ("POST", "/v1/executions", {"execution_kind": "k",
                                "policy": {"quota_policy_id": UNKNOWN}}, 404),
    ("POST", "/v1/flows", {"budget_ids": [UNKNOWN]}, 404),
])
async def test_bad_input_is_a_json_error_that_writes_nothing(
        api: Api, client: ApiClient, method: str, path: str, body: object,
        status: int) -> None:
    before = await writes(api)
    response = await client.request(method, path, json=body)
    assert response.status == status
    assert isinstance(response.json()["error"], str)
    assert await writes(api) == before
    with pytest.raises(HttpStatusError):
        response.raise_for_status()


async def test_negative_usage_is_refused(api: Api, client: ApiClient) -> None:
    bid = (await client.create_budget(CreateBudgetArgs(
        dimensions=["a"], hard_limits=[0], soft_limits=[0]))).Created.budget_id
    before = await writes(api)
    response = await client.request("POST", f"/v1/budgets/{bid}/usage",
                                    json={"dimensions": {"a": -1}})
    assert response.status == 400
    assert await writes(api) == before
