"""Routes of the budgets area: budgets (create, status, usage, reset) and quota policies
(create, and `GET /v1/quotas/{id}`, which the reference lacks)."""

from __future__ import annotations

from ff.core.budget_records import (
    BudgetStatus,
    CreateBudgetArgs,
    CreateBudgetResult,
    CreateQuotaPolicyArgs,
    CreateQuotaPolicyResult,
    QuotaStatus,
    ReportUsageArgs,
    ResetBudgetResult,
)
from ff.http._codec import decode_json
from ff.http._message import Request, Response, json_response
from ff.http._router import BODY_LIMIT_CONTROL
from ff.server import Server

from ._common import AddRoute


def register(add: AddRoute, server: Server) -> None:
    async def create_budget(request: Request) -> Response:
        result = await server.create_budget(decode_json(request, CreateBudgetArgs))
        return json_response(201 if result.Created else 200, result)

    async def budget_status(request: Request) -> Response:
        return json_response(200, await server.get_budget_status(request.path_params["id"]))

    async def report_usage(request: Request) -> Response:
        result = await server.report_usage(request.path_params["id"],
                                           decode_json(request, ReportUsageArgs))
        return json_response(200, result.wire())

    async def reset_budget(request: Request) -> Response:
        return json_response(200, await server.reset_budget(request.path_params["id"]))

    async def create_quota(request: Request) -> Response:
        result = await server.create_quota_policy(decode_json(request, CreateQuotaPolicyArgs))
        return json_response(201 if result.Created else 200, result)

    async def quota_status(request: Request) -> Response:
        return json_response(200, await server.get_quota_policy(request.path_params["id"]))

    add("POST", "/v1/budgets", create_budget, body_limit=BODY_LIMIT_CONTROL,
        request_type=CreateBudgetArgs, response_type=CreateBudgetResult, response_status=201,
        summary="Create a budget (200 with AlreadySatisfied for an existing id)")
    add("GET", "/v1/budgets/{id}", budget_status, response_type=BudgetStatus,
        summary="A budget's limits, usage and breach counters")
    add("POST", "/v1/budgets/{id}/usage", report_usage, body_limit=BODY_LIMIT_CONTROL,
        request_type=ReportUsageArgs,
        summary='Report usage: "Ok", "AlreadyApplied", {"SoftBreach": ...} or '
                '{"HardBreach": ...} (nothing applied)')
    add("POST", "/v1/budgets/{id}/reset", reset_budget, body_limit=BODY_LIMIT_CONTROL,
        response_type=ResetBudgetResult, summary="Zero a budget's usage")
    add("POST", "/v1/quotas", create_quota, body_limit=BODY_LIMIT_CONTROL,
        request_type=CreateQuotaPolicyArgs, response_type=CreateQuotaPolicyResult,
        response_status=201, summary="Create a quota policy")
    add("GET", "/v1/quotas/{id}", quota_status, response_type=QuotaStatus,
        summary="A quota policy and its live window and concurrency counts")
