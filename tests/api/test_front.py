"""The API's front end with the engine behind it: auth, CORS, body limits, keep-alive,
pipelining, many connections and stalled clients, all over real sockets."""

from __future__ import annotations

import msgspec
import trio

from ff.client import ApiClient
from ff.http import BODY_LIMIT_CONTROL, BODY_LIMIT_LARGE
from tests.api.conftest import Api, running_api
from tests.http.httptoy import RawClient

TOKEN = "t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}


async def test_auth_on(server_url: str) -> None:
    async with running_api(server_url, config={"api_token": TOKEN}) as api:
        raw = await api.raw()
        unauthorized = {"error": "missing or invalid Authorization header"}
        for method, target in (("GET", "/v1/executions?partition=0"), ("POST", "/v1/executions"),
                               ("GET", "/v1/openapi.json"), ("GET", "/no/such/route"),
                               ("POST", "/v1/workers/w/claim")):
            reply = await raw.request(method, target, JSON, b"{}" if method == "POST" else b"")
            assert (reply.status, reply.json()) == (401, unauthorized), target
        reply = await raw.request("GET", "/v1/executions?partition=0",
                                  {"Authorization": f"Bearer {TOKEN}x"})
        assert reply.status == 401
        # Unauthenticated and oversized: still 401, the cap is not revealed.
        reply = await raw.request("POST", "/v1/executions", JSON, b"x" * (BODY_LIMIT_CONTROL // 2))
        assert reply.status == 401

        assert (await raw.request("GET", "/healthz")).status == 200
        assert (await raw.request("GET", "/metrics")).status == 200
        await raw.aclose()

        async with ApiClient(api.url, token=TOKEN) as client:
            created = await client.create_execution({"execution_kind": "a"})
            assert await client.get_execution_state(created.execution_id) == "waiting"
            document = (await client.request("GET", "/v1/openapi.json")).json()
            assert document["security"] == [{"bearer": []}]
            assert (await client.request("GET", "/no/such/route")).status == 404


async def test_auth_off_unknown_route_is_404(api: Api, raw: RawClient) -> None:
    reply = await raw.request("GET", "/v1/nothing")
    assert (reply.status, reply.json()["kind"]) == (404, "route_not_found")
    reply = await raw.request("DELETE", "/v1/executions")
    assert (reply.status, reply.headers["allow"]) == (405, "GET, POST")


async def test_cors_preflight_on_an_api_route(server_url: str) -> None:
    origin = "https://app.example"
    config = {"api_token": TOKEN, "cors_origins": (origin,)}
    async with running_api(server_url, config=config) as api:
        raw = await api.raw()
        preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization, content-type"}
        reply = await raw.request("OPTIONS", "/v1/executions", preflight)
        assert reply.status == 204
        assert reply.headers["access-control-allow-origin"] == origin
        assert reply.headers["access-control-allow-headers"] == "authorization, content-type"
        assert "POST" in reply.headers["access-control-allow-methods"]

        reply = await raw.request("OPTIONS", "/v1/executions",
                                  {**preflight, "Origin": "https://evil.example"})
        assert reply.status == 204
        assert "access-control-allow-origin" not in reply.headers

        reply = await raw.request("POST", "/v1/executions", {**AUTH, **JSON, "Origin": origin},
                                  b'{"execution_kind": "a"}')
        assert reply.status == 201
        assert reply.headers["access-control-allow-origin"] == origin
        await raw.aclose()


def create_body(size: int) -> bytes:
    """A valid create body of exactly `size` bytes (the padding is the input payload)."""
    head, tail = b'{"execution_kind": "big", "input_payload": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_create_body_limit(api: Api, raw: RawClient) -> None:
    reply = await raw.request("POST", "/v1/executions", JSON, create_body(BODY_LIMIT_LARGE - 1))
    assert reply.status == 201, reply.body
    reply = await raw.request("POST", "/v1/executions", JSON, create_body(BODY_LIMIT_LARGE + 1))
    assert reply.status == 413
    assert reply.json() == {"error": "payload_too_large", "limit_bytes": BODY_LIMIT_LARGE,
                            "route": "/v1/executions"}

    fresh = await api.raw()
    target = "/v1/executions/%7Bfp%3A0%7D%3A00000000-0000-4000-8000-000000000000/cancel"
    reply = await fresh.request("POST", target, JSON, b" " * (BODY_LIMIT_CONTROL + 1))
    assert reply.json()["route"] == "/v1/executions/{id}/cancel"
    await fresh.aclose()


async def test_keep_alive_100_requests_on_one_connection(api: Api, raw: RawClient) -> None:
    ids = []
    for n in range(50):
        reply = await raw.request("POST", "/v1/executions", JSON,
                                  b'{"execution_kind": "k%d"}' % n)
        assert reply.status == 201
        eid = reply.json()["Created"]["execution_id"]
        ids.append(eid)
        target = "/v1/executions/" + eid.replace("{", "%7B").replace("}", "%7D") + "/state"
        reply = await raw.request("GET", target)
        assert (reply.status, reply.body) == (200, b'"waiting"')
    assert len(set(ids)) == 50
    assert not await raw.closed_by_peer(within=0.05)


async def test_pipelined_requests_are_answered_in_order(api: Api, raw: RawClient) -> None:
    requests = []
    for n in range(10):
        body = b'{"execution_kind": "p%d"}' % n
        requests.append(b"POST /v1/executions HTTP/1.1\r\nHost: t\r\nContent-Type: "
                        b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        requests.append(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    await raw.send(b"".join(requests))
    created = []
    for _ in range(10):
        reply = await raw.read_reply(b"POST")
        assert reply.status == 201
        created.append(reply.json()["Created"]["execution_id"])
        reply = await raw.read_reply()
        assert (reply.status, reply.json()) == (200, {"status": "ok"})
    async with ApiClient(api.url) as client:
        kinds = [(await client.get_execution(eid)).execution_kind for eid in created]
    assert kinds == [f"p{n}" for n in range(10)]


async def test_500_concurrent_connections(api: Api) -> None:
    statuses: list[int] = []

    async def one(n: int) -> None:
        client = await api.raw()
        try:
            reply = await client.request("POST", "/v1/executions", JSON,
                                         b'{"execution_kind": "c", "tags": {"n": "%d"}}' % n)
            statuses.append(reply.status)
            reply = await client.request("GET", "/healthz")
            statuses.append(reply.status)
        finally:
            await client.aclose()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(500):
                nursery.start_soon(one, n)
    assert statuses.count(201) == 500 and statuses.count(200) == 500
    partition_sizes = [
        len((await api.server.list_executions(p, limit=1000)).executions) for p in range(4)]
    assert sum(partition_sizes) == 500


async def test_a_stalled_half_request_is_timed_out(server_url: str) -> None:
    async with running_api(server_url, header_timeout=0.3, request_timeout=0.3) as api:
        head_only = await api.raw()
        await head_only.send(b"POST /v1/executions HTTP/1.1\r\nHost: t\r\n")
        body_short = await api.raw()
        await body_short.send(b"POST /v1/executions HTTP/1.1\r\nHost: t\r\n"
                              b"Content-Length: 100\r\n\r\n{\"execution_kind\"")
        with trio.fail_after(5):
            for stalled in (head_only, body_short):
                reply = await stalled.read_reply(b"POST")
                assert reply.status == 408
                assert msgspec.json.decode(reply.body)["kind"] == "timeout"
                assert await stalled.closed_by_peer()
                await stalled.aclose()
        # The server is fine afterwards.
        async with ApiClient(api.url) as client:
            await client.health()
