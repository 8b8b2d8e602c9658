"""Batch submit: `Server.create_executions`, `POST /v1/executions:batch` and
`ApiClient.create_executions`; and the direct producer `ff.Client`."""

from __future__ import annotations

import msgspec
import pytest

import ff
from ff.client import ApiClient
from ff.core.errors import FFError, ValidationError
from ff.core.keys import ExecKeys
from ff.core.records import CancelExecutionArgs, CreateExecutionArgs
from ff.script import execution as fns
from tests.api.conftest import Api, writes
from tests.engine.conftest import claim, fence

pytestmark = pytest.mark.compat


async def test_server_batch_answers_in_order_and_a_bad_item_fails_alone(
        api: Api) -> None:
    items = [CreateExecutionArgs(execution_kind="job", input_payload=f"p{i}")
             for i in range(5)]
    items[2] = CreateExecutionArgs(execution_kind="")  # refused in Python
    items[3] = CreateExecutionArgs(execution_kind="job", policy=ff.ExecutionPolicy(
        routing_requirements=ff.RoutingRequirements(required_capabilities=["a b"])))
    results = await api.server.create_executions(items)
    assert len(results) == 5
    assert isinstance(results[2], ValidationError) and results[2].code == "invalid_input"
    assert isinstance(results[3], FFError) and results[3].code == "invalid_capabilities"
    for i in (0, 1, 4):
        created = results[i]
        assert not isinstance(created, FFError) and created.public_state == "waiting"
        payload = await api.server.client.execute("GET", ExecKeys(created.execution_id).payload)
        assert payload == f"p{i}".encode()


async def test_server_batch_honours_idempotency_keys_per_item(api: Api) -> None:
    first = await api.server.create_execution(
        CreateExecutionArgs(execution_kind="job", idempotency_key="k-old"))
    results = await api.server.create_executions([
        CreateExecutionArgs(execution_kind="job", idempotency_key="k-old"),
        CreateExecutionArgs(execution_kind="job", idempotency_key="k-new"),
        CreateExecutionArgs(execution_kind="job", idempotency_key="k-new"),
        CreateExecutionArgs(execution_kind="job"),
    ])
    old, new, again, plain = results
    assert not isinstance(old, FFError) and old.duplicate
    assert old.execution_id == first.execution_id and old.public_state == "waiting"
    assert not isinstance(new, FFError) and not new.duplicate
    assert not isinstance(again, FFError) and again.duplicate
    assert again.execution_id == new.execution_id
    assert not isinstance(plain, FFError) and not plain.duplicate


async def test_server_batch_over_the_limit_is_refused_whole(api: Api) -> None:
    before = await writes(api)
    with pytest.raises(ValidationError) as caught:
        await api.server.create_executions(
            [CreateExecutionArgs(execution_kind="job")] * 1001)
    assert caught.value.code == "batch_too_large"
    assert await writes(api) == before


async def test_http_batch_per_item_results(api: Api, client: ApiClient) -> None:
    body = [{"execution_kind": "job", "input_payload": "a"},
            {"execution_kind": "job", "priority": "high"},  # wrong type: fails alone
            {"execution_kind": "job", "execution_id": "nope"},
            {"execution_kind": "job", "idempotency_key": "same"},
            {"execution_kind": "job", "idempotency_key": "same"}]
    response = await client.request("POST", "/v1/executions:batch", json=body)
    assert response.status == 200
    results = msgspec.json.decode(response.body)["results"]
    assert [next(iter(r)) for r in results] == ["Created", "Error", "Error", "Created",
                                                "Duplicate"]
    assert results[1]["Error"]["status"] == 400
    assert results[1]["Error"]["kind"] == "invalid_body"
    assert results[2]["Error"]["kind"] == "invalid_execution_id"
    assert results[4]["Duplicate"]["execution_id"] == results[3]["Created"]["execution_id"]

    typed = await client.create_executions([
        CreateExecutionArgs(execution_kind="job", input_payload=b"\x00\x01"),
        {"execution_kind": ""}])
    assert not isinstance(typed[0], FFError) and typed[0].public_state == "waiting"
    assert isinstance(typed[1], ValidationError) and typed[1].code == "invalid_input"


async def test_http_batch_limit_and_bad_bodies(api: Api, client: ApiClient) -> None:
    before = await writes(api)
    too_many = await client.request("POST", "/v1/executions:batch",
                                    json=[{"execution_kind": "job"}] * 1001)
    assert too_many.status == 413
    assert msgspec.json.decode(too_many.body)["kind"] == "batch_too_large"
    not_array = await client.request("POST", "/v1/executions:batch",
                                     json={"execution_kind": "job"})
    assert not_array.status == 400
    assert await writes(api) == before
    full = await client.request("POST", "/v1/executions:batch",
                                json=[{"execution_kind": "job"}] * 1000)
    assert full.status == 200
    assert len(msgspec.json.decode(full.body)["results"]) == 1000


async def test_direct_producer_creates_reads_and_cancels(api: Api, server_url: str) -> None:
    server = api.server
    async with ff.Client.connect(server_url) as producer:
        created = await producer.create_execution(
            CreateExecutionArgs(execution_kind="job", input_payload="x"))
        many = await producer.create_executions(
            [CreateExecutionArgs(execution_kind="job") for _ in range(3)])
        assert all(not isinstance(m, FFError) for m in many)
        assert await producer.get_execution_state(created.execution_id) == "waiting"
        lease = await claim(server)  # the producer spreads the lane: any of the four
        ids = {created.execution_id, *(m.execution_id for m in many
                                       if not isinstance(m, FFError))}
        assert lease is not None and lease.execution_id in ids
        await fns.complete_execution(server.library, lease.execution_id, result=b"done",
                                     **fence(lease))
        assert await producer.get_execution_state(lease.execution_id) == "completed"
        assert await producer.get_execution_result(lease.execution_id) == b"done"
        target = next(m for m in many
                      if not isinstance(m, FFError) and m.execution_id != lease.execution_id)
        cancelled = await producer.cancel_execution(target.execution_id,
                                                    CancelExecutionArgs(reason="no"))
        assert cancelled.public_state == "cancelled"
        assert await producer.get_execution_state(target.execution_id) == "cancelled"
