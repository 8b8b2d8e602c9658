"""Every route over a real socket: happy paths in the reference's wire shapes, and the typed
status of each error (404/400/409/429/503, never a 500 for a business error)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import msgspec
import pytest

from ff.client import ApiClient, HttpStatusError
from ff.core.ids import ExecutionId
from ff.core.keys import ExecKeys
from ff.core.records import CancelExecutionArgs, CreateExecutionArgs
from ff.script import execution as fns
from ff.script import lease as lease_fns
from tests.api.conftest import Api, running_api
from tests.engine.conftest import TEST_PARTITIONS, claim, fence

JSON = {"Content-Type": "application/json"}


def path(eid: str, suffix: str = "") -> str:
    return f"/v1/executions/{quote(eid, safe='')}{suffix}"


async def create(client: ApiClient, **fields: object) -> str:
    fields.setdefault("execution_kind", "job")
    return (await client.create_execution(fields)).execution_id


async def status_of(api: Api, method: str, target: str, body: object = None) -> tuple[int, dict]:
    async with ApiClient(api.url) as client:
        response = await client.request(method, target, json=body)
    decoded = msgspec.json.decode(response.body) if response.body else None
    return response.status, decoded


async def test_create_answers_created_then_duplicate(api: Api, client: ApiClient) -> None:
    body = {"execution_kind": "email", "input_payload": [104, 105], "idempotency_key": "k-1",
            "namespace": "ns", "lane_id": "default", "priority": 3, "tags": {"team": "a"}}
    first = await client.request("POST", "/v1/executions", json=body)
    assert first.status == 201
    created = first.json()["Created"]
    assert created["public_state"] == "waiting"
    assert ExecutionId.parse(created["execution_id"]).partition in [
        p % TEST_PARTITIONS.num_flow_partitions for p in TEST_PARTITIONS.lane_partitions("default")]

    again = await client.request("POST", "/v1/executions", json=body)
    assert again.status == 200
    assert again.json() == {"Duplicate": {"execution_id": created["execution_id"],
                                          "public_state": "waiting"}}
    result = await client.create_execution(body)
    assert (result.execution_id, result.duplicate) == (created["execution_id"], True)


async def test_create_takes_given_ids_now_and_both_payload_forms(
    api: Api, client: ApiClient
) -> None:
    eid = f"{{fp:3}}:{uuid.uuid4()}"
    result = await client.create_execution({
        "execution_id": eid, "partition_id": 3, "now": 1, "execution_kind": "a",
        "input_payload": "h\u00e9llo"})
    assert result.execution_id == eid
    await client.create_execution(CreateExecutionArgs(execution_kind="b",
                                                      input_payload=b"\x00\xff"))  # type: ignore[arg-type]
    await client.create_execution({"execution_kind": "c", "input_payload": [0, 255, 7]})
    payloads = {}
    while (lease := await claim(api.server)) is not None:
        payloads[lease.execution_kind] = lease.payload
    assert payloads == {"a": "h\u00e9llo".encode(), "b": b"\x00\xff", "c": b"\x00\xff\x07"}


async def test_get_state_and_list(api: Api, client: ApiClient) -> None:
    ids = sorted([await create(client, priority=n) for n in range(3)])
    info = await client.get_execution(ids[0])
    assert (info.execution_id, info.execution_kind, info.lane_id) == (ids[0], "job", "default")
    assert info.state_vector.lifecycle_phase == "runnable"
    assert info.public_state == "waiting"
    raw = (await client.request("GET", path(ids[0]))).json()
    assert "started_at" not in raw and "completed_at" not in raw
    assert raw["flow_id"] is None

    response = await client.request("GET", path(ids[0], "/state"))
    assert (response.status, response.body) == (200, b'"waiting"')
    assert await client.get_execution_state(ids[1]) == "waiting"

    partition = ExecutionId.parse(ids[0]).partition
    page = await client.list_executions(partition, limit=2)
    assert page.executions == ids[:2] and page.next_cursor == ids[1]
    page = await client.list_executions(partition, cursor=page.next_cursor, limit=2)
    assert (page.executions, page.next_cursor) == (ids[2:], None)
    assert (await client.request("GET", f"/v1/executions?partition={partition}&cursor=")
            ).json()["executions"] == ids

    waiting = await client.list_executions(partition, lane="default", state="waiting")
    assert sorted(waiting.executions) == ids
    assert (await client.list_executions(partition, lane="default", state="completed")
            ).executions == []
    assert len((await client.list_executions(partition, lane="default", offset=1)
                ).executions) == 2


async def test_result_is_raw_bytes_once_completed(api: Api, client: ApiClient) -> None:
    eid = await create(client)
    response = await client.request("GET", path(eid, "/result"))
    assert response.status == 404
    assert response.json() == {"error": f"execution result not found: {eid}"}
    assert await client.get_execution_result(eid) is None

    lease = await claim(api.server)
    assert lease is not None
    result = b"\x00\xff\xfe not utf-8 \x80"
    await fns.complete_execution(api.server.library, eid, result=result, **fence(lease))
    response = await client.request("GET", path(eid, "/result"))
    assert response.status == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.body == result
    assert await client.get_execution_result(eid) == result


async def test_cancel(api: Api, client: ApiClient) -> None:
    eid = await create(client)
    response = await client.request("POST", path(eid, "/cancel"),
                                    json={"execution_id": eid, "reason": "r", "now": 5})
    assert response.status == 200
    assert response.json() == {"Cancelled": {"execution_id": eid, "public_state": "cancelled"}}
    # A repeat is answered the same way; no body at all is an operator cancel.
    again = await client.request("POST", path(eid, "/cancel"))
    assert again.json() == response.json()

    other = await create(client)
    cancelled = await client.cancel_execution(other, CancelExecutionArgs(reason="typed"))
    assert (cancelled.execution_id, cancelled.public_state) == (other, "cancelled")

    status, body = await status_of(api, "POST", path(await create(client), "/cancel"),
                                   {"execution_id": other})
    assert status == 400 and body["error"].startswith("invalid_input")
    status, body = await status_of(api, "POST", path(f"{{fp:1}}:{uuid.uuid4()}", "/cancel"), {})
    assert status == 404 and body["error"].startswith("execution_not_found")


async def test_cancel_of_a_completed_execution_is_409(api: Api, client: ApiClient) -> None:
    eid = await create(client)
    lease = await claim(api.server)
    assert lease is not None
    await fns.complete_execution(api.server.library, eid, result=b"ok", **fence(lease))
    with pytest.raises(HttpStatusError) as caught:
        await client.cancel_execution(eid)
    assert (caught.value.status, caught.value.kind, caught.value.retryable) == (
        409, "contention", True)
    assert caught.value.error.startswith("execution_not_active")


async def test_priority(api: Api, client: ApiClient) -> None:
    low, high = await create(client), await create(client)
    response = await client.request("PUT", path(high, "/priority"), json={"new_priority": 9})
    assert (response.status, response.json()) == (200, {"Changed": {"execution_id": high}})
    await client.change_priority(low, -1)
    lease = await claim(api.server)
    assert lease is not None and lease.execution_id == high

    status, body = await status_of(api, "PUT", path(low, "/priority"), {"new_priority": "x"})
    assert status == 400 and body["kind"] == "invalid_body"
    status, body = await status_of(api, "PUT", path(f"{{fp:0}}:{uuid.uuid4()}", "/priority"),
                                   {"new_priority": 1})
    assert status == 404


async def test_replay(api: Api, client: ApiClient) -> None:
    eid = await create(client)
    with pytest.raises(HttpStatusError) as caught:
        await client.replay_execution(eid)
    assert (caught.value.status, caught.value.kind, caught.value.retryable) == (
        409, "execution_not_terminal", False)
    await client.cancel_execution(eid)
    response = await client.request("POST", path(eid, "/replay"))
    assert (response.status, response.json()) == (200, {"Replayed": {"public_state": "waiting"}})


async def test_revoke_lease_then_reclaim(api: Api, client: ApiClient) -> None:
    eid = await create(client)
    no_lease = {"AlreadySatisfied": {"reason": "no_active_lease"}}
    response = await client.request("POST", path(eid, "/revoke-lease"))
    assert (response.status, response.json()) == (200, no_lease)
    finished = await create(client)
    await client.cancel_execution(finished)
    assert (await client.request("POST", path(finished, "/revoke-lease"))).json() == no_lease
    response = await client.request("POST", path(f"{{fp:0}}:{uuid.uuid4()}", "/revoke-lease"))
    assert response.status == 404

    reclaim_body = {"worker_id": "w2", "worker_instance_id": "w2-i", "lane_id": "default",
                    "grant_ttl_ms": 5000}
    response = await client.request("POST", path(eid, "/reclaim"), json=reclaim_body)
    assert response.status == 200
    assert response.json()["status"] == "not_reclaimable"

    lease = await claim(api.server)
    assert lease is not None
    revoked = await client.revoke_lease(eid)
    assert revoked.Revoked is not None
    assert (revoked.Revoked.lease_id, str(revoked.Revoked.lease_epoch)) == (
        lease.lease_id, lease.lease_epoch)

    granted = (await client.request("POST", path(eid, "/reclaim"), json=reclaim_body)).json()
    tag = ExecutionId.parse(eid).tag
    assert granted == {"status": "granted", "execution_id": eid, "partition_key": tag,
                       "grant_key": ExecKeys(eid).claim_grant,
                       "expires_at_ms": granted["expires_at_ms"], "lane_id": "default"}
    handle = await lease_fns.reclaim_execution(
        api.server.library, eid, worker_id="w2", worker_instance_id="w2-i",
        lease_id=str(uuid.uuid4()), lease_ttl_ms=5000, attempt_id=str(uuid.uuid4()))
    assert handle.attempt_index == 1

    for bad in ({**reclaim_body, "grant_ttl_ms": 0}, {**reclaim_body, "worker_id": "a b"},
                {**reclaim_body, "grant_ttl_ms": 60_001}):
        status, answer = await status_of(api, "POST", path(eid, "/reclaim"), bad)
        assert status == 400, (bad, answer)


async def test_claim_route(api: Api, client: ApiClient) -> None:
    body = {"lane_id": "default", "worker_instance_id": "w-1", "grant_ttl_ms": 5000}
    response = await client.request("POST", "/v1/workers/w/claim", json=body)
    assert (response.status, response.body) == (204, b"")
    assert await client.claim("w", lane_id="default", worker_instance_id="w-1") is None

    eid = await create(client)
    response = await client.request("POST", "/v1/workers/w/claim", json=body)
    assert response.status == 200
    grant = response.json()
    assert grant == {"execution_id": eid, "partition_key": ExecutionId.parse(eid).tag,
                     "grant_key": ExecKeys(eid).claim_grant,
                     "expires_at_ms": grant["expires_at_ms"], "lane_id": "default",
                     "kind": "claim", "quota_policy_id": None}

    gpu = {"routing_requirements": {"required_capabilities": ["gpu"]}}
    wanted = await create(client, policy=gpu)
    typed = await client.claim("w", lane_id="default", worker_instance_id="w-2",
                               capabilities=["gpu", "ssd"])
    assert typed is not None and (typed.execution_id, typed.kind) == (wanted, "claim")
    await create(client, policy=gpu)
    assert await client.claim("w", lane_id="default", worker_instance_id="w-2") is None

    for target, bad in (
        ("/v1/workers/w/claim", {**body, "grant_ttl_ms": 0}),
        ("/v1/workers/w/claim", {**body, "grant_ttl_ms": 60_001}),
        ("/v1/workers/w/claim", {**body, "lane_id": ""}),
        ("/v1/workers/w/claim", {**body, "capabilities": ["a,b"]}),
        ("/v1/workers/w/claim", {"lane_id": "default"}),
        ("/v1/workers/a%20b/claim", body),
    ):
        status, answer = await status_of(api, "POST", target, bad)
        assert status == 400, (target, bad, answer)
        assert answer["error"]


async def test_health_metrics_and_openapi(api: Api, client: ApiClient) -> None:
    response = await client.request("GET", "/healthz")
    assert (response.status, response.json()) == (200, {"status": "ok"})
    await client.health()

    def created_total(text: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith("ff_executions_created_total"))
        return float(line.split()[-1])

    before = created_total((await client.request("GET", "/metrics")).body.decode())
    await create(client)
    await create(client, idempotency_key="once")
    await create(client, idempotency_key="once")
    metrics = await client.request("GET", "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.body.decode()
    assert created_total(text) == before + 2
    assert 'ff_http_requests_total{method="POST",path="/v1/executions",status="201"}' in text

    document = (await client.request("GET", "/v1/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    operations = {(method.upper(), p) for p, item in document["paths"].items() for method in item}
    assert operations == {
        ("GET", "/v1/executions"), ("POST", "/v1/executions"), ("POST", "/v1/executions:batch"),
        ("GET", "/v1/executions/{id}"), ("GET", "/v1/executions/{id}/state"),
        ("GET", "/v1/executions/{id}/result"), ("POST", "/v1/executions/{id}/cancel"),
        ("PUT", "/v1/executions/{id}/priority"), ("POST", "/v1/executions/{id}/replay"),
        ("POST", "/v1/executions/{id}/revoke-lease"), ("POST", "/v1/executions/{id}/reclaim"),
        ("POST", "/v1/workers/{worker_id}/claim"), ("GET", "/healthz"), ("GET", "/metrics"),
        ("GET", "/v1/lanes"), ("GET", "/v1/lanes/{lane}/counts"),
        ("GET", "/v1/openapi.json"), ("GET", "/v1/executions/{id}/pending-waitpoints"),
        ("GET", "/v1/executions/{id}/waitpoints/{waitpoint_id}/token"),
        ("POST", "/v1/executions/{id}/signal"), ("POST", "/v1/executions/{id}/resume"),
        ("POST", "/v1/admin/rotate-waitpoint-secret"),
        ("GET", "/v1/executions/{id}/attempts/{idx}/stream"),
        ("GET", "/v1/executions/{id}/attempts/{idx}/stream/tail"),
        ("GET", "/v1/executions/{id}/attempts/{idx}/summary"),
        ("POST", "/v1/flows"), ("GET", "/v1/flows/{id}"), ("GET", "/v1/flows/{id}/members"),
        ("POST", "/v1/flows/{id}/members"),
        ("PUT", "/v1/flows/{id}/members/{execution_id}/edge-group"),
        ("POST", "/v1/flows/{id}/edges"), ("POST", "/v1/flows/{id}/edges/apply"),
        ("POST", "/v1/flows/{id}/cancel"),
        ("POST", "/v1/budgets"), ("GET", "/v1/budgets/{id}"),
        ("POST", "/v1/budgets/{id}/usage"), ("POST", "/v1/budgets/{id}/reset"),
        ("POST", "/v1/quotas"), ("GET", "/v1/quotas/{id}"),
    }
    assert "security" not in document


BAD_IDS = ("abc", "{fp:1}:not-a-uuid", f"{{fp:99999}}:{uuid.uuid4()}", "%7Bfp%3A1%7D")


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_bad_ids_in_paths_are_400(api: Api, bad_id: str) -> None:
    for method, suffix, body in (
        ("GET", "", None), ("GET", "/state", None), ("GET", "/result", None),
        ("POST", "/cancel", {}), ("PUT", "/priority", {"new_priority": 1}),
        ("POST", "/replay", None), ("POST", "/revoke-lease", None),
        ("POST", "/reclaim", {"worker_id": "w", "worker_instance_id": "i",
                              "lane_id": "default", "grant_ttl_ms": 10}),
    ):
        status, answer = await status_of(api, method, f"/v1/executions/{bad_id}{suffix}", body)
        assert status == 400, (method, suffix, answer)
        assert answer["error"].startswith("invalid_execution_id"), answer


@pytest.mark.parametrize("query, fragment", [
    ("", "missing query parameter `partition`"),
    ("partition=abc", "`partition` must be an integer"),
    ("partition=-1", "`partition` must be >= 0"),
    ("partition=70000", "`partition` must be <= 65535"),
    ("partition=4", "partition outside the configured range"),
    ("partition=0&limit=x", "`limit` must be an integer"),
    ("partition=0&limit=-5", "`limit` must be >= 0"),
    ("partition=0&cursor=nope", "invalid_execution_id"),
    ("partition=0&state=waiting", "pass `lane`"),
    ("partition=0&offset=2", "pass `lane`"),
    ("partition=0&lane=default&cursor=x", "with `lane` use `offset`"),
    ("partition=0&lane=default&offset=-1", "`offset` must be >= 0"),
    ("partition=0&lane=default&state=sleepy", "unknown state filter"),
    ("partition=0&lane=%01", "invalid_lane_id"),
])
async def test_bad_list_queries_are_400(api: Api, query: str, fragment: str) -> None:
    status, answer = await status_of(api, "GET", f"/v1/executions?{query}")
    assert status == 400, answer
    assert fragment in answer["error"]


@pytest.mark.parametrize("body, status, fragment", [
    (b"{", 400, "invalid JSON"),
    (b"", 400, "request body is empty"),
    (b"[]", 400, "Expected `object`"),
    (b'{"input_payload": "x"}', 400, "missing required field `execution_kind`"),
    (b'{"execution_kind": 5}', 400, "Expected `str`"),
    (b'{"execution_kind": "a", "priority": "high"}', 400, "$.priority"),
    (b'{"execution_kind": "a", "input_payload": [1, 256]}', 400, "input_payload"),
    (b'{"execution_kind": "a", "input_payload": {"x": 1}}', 400, "$.input_payload"),
    (b'{"execution_kind": "a", "lane_id": ""}', 400, "invalid_lane_id"),
    (b'{"execution_kind": ""}', 400, "execution_kind is required"),
    (b'{"execution_kind": "a", "execution_id": "nope"}', 400, "invalid_execution_id"),
    (b'{"execution_kind": "a", "policy": {"retry": 1}}', 400, "invalid_policy_json"),
    (b'{"execution_kind": "a", "policy": {"retry_policy": {"backoff": {"type": "x"}}}}', 400,
     "invalid_policy_json"),
    (b'{"execution_kind": "a", "policy": {"routing_requirements": '
     b'{"required_capabilities": ["a b"]}}}', 400, "invalid_capabilities"),
    (b'{"execution_kind": "a", "execution_id": "{fp:1}:00000000-0000-4000-8000-000000000000",'
     b' "partition_id": 2}', 400, "partition_id does not match"),
])
async def test_bad_create_bodies_are_4xx_json(
    api: Api, raw, body: bytes, status: int, fragment: str
) -> None:
    reply = await raw.request("POST", "/v1/executions", JSON, body)
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert fragment in reply.json()["error"]


async def test_other_bad_bodies_are_400(api: Api, raw) -> None:
    eid = ExecutionId.mint(0)
    for method, target, body in (
        ("POST", path(eid, "/cancel"), b"{not json"),
        ("POST", path(eid, "/cancel"), b'{"lease_epoch": [1]}'),
        ("PUT", path(eid, "/priority"), b""),
        ("PUT", path(eid, "/priority"), b'{"new_priority": 1.5}'),
        ("POST", path(eid, "/reclaim"), b'{"worker_id": "w"}'),
        ("POST", "/v1/workers/w/claim", b"null"),
    ):
        reply = await raw.request(method, target, JSON, body)
        assert reply.status == 400, (target, body, reply.body)
        assert reply.json()["error"]


async def test_backend_down_is_503_transport(fault_server) -> None:
    async with running_api(fault_server.url) as api, ApiClient(api.url) as client:
        await client.health()
        eid = await create(client)
        fault_server.kill()
        for method, target in (("GET", "/healthz"), ("GET", path(eid, "/state")),
                               ("POST", "/v1/executions")):
            body = {"execution_kind": "x"} if method == "POST" else None
            response = await client.request(method, target, json=body)
            assert response.status == 503, (target, response.body)
            error = response.json()
            assert (error["kind"], error["retryable"]) == ("transport", True)
        await fault_server.start()
