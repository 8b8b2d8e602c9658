"""The front end over real sockets: statuses, auth, CORS, limits, keep-alive, timeouts, shutdown."""

from __future__ import annotations

import logging
from functools import partial

import msgspec
import pytest
import trio

from ff.http import DEFAULT_BODY_LIMIT, HttpApp, serve_http
from tests.http.httptoy import ECHO_LIMIT, RawClient, build_app

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AUTH_LOWER = {"authorization": f"Bearer {TOKEN}"}


async def test_json_string_raw_and_empty_answers(serve, connect) -> None:
    client = await connect(await serve(build_app()))

    reply = await client.request("GET", "/items/abc%20d%7Bfp%3A3%7D")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"id": "abc d{fp:3}", "route": "/items/{id}"}

    reply = await client.request("GET", "/state")
    assert (reply.status, reply.body) == (200, b'"Ok"')

    reply = await client.request("GET", "/raw")
    assert reply.headers["content-type"] == "application/octet-stream"
    assert reply.body == b"\x00\xff raw \x80"

    reply = await client.request("POST", "/claim")
    assert reply.status == 204
    assert reply.body == b""
    assert "content-length" not in reply.headers

    body = b'{"name":"widget","quantity":3}'
    reply = await client.request("POST", "/items", {"Content-Type": "application/json"}, body)
    assert reply.status == 201
    assert reply.json() == {"Created": {"name": "widget", "quantity": 3, "tags": []}}


async def test_unknown_path_is_404_and_wrong_method_is_405(serve, connect) -> None:
    client = await connect(await serve(build_app()))

    reply = await client.request("GET", "/nope")
    assert reply.status == 404
    assert reply.json() == {"error": "no route for /nope", "kind": "route_not_found"}

    reply = await client.request("DELETE", "/items/7")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, PUT"
    assert reply.json()["kind"] == "method_not_allowed"

    reply = await client.request("HEAD", "/state")
    assert reply.status == 405
    assert reply.body == b""  # HEAD answers never carry a body

    # The connection survived every error above.
    assert (await client.request("GET", "/state")).status == 200


async def test_auth_rules(serve, connect) -> None:
    client = await connect(await serve(build_app(api_token=TOKEN)))

    unauthorized = {"error": "missing or invalid Authorization header"}
    reply = await client.request("GET", "/items/1")
    assert (reply.status, reply.json()) == (401, unauthorized)
    assert reply.headers["www-authenticate"] == "Bearer"
    for bad in (f"Bearer {TOKEN}x", f"bearer {TOKEN}", TOKEN, "Bearer "):
        reply = await client.request("GET", "/items/1", {"Authorization": bad})
        assert reply.status == 401, bad

    assert (await client.request("GET", "/items/1", AUTH)).json()["id"] == "1"

    # With auth on, an unknown path does not reveal that it is unknown...
    assert (await client.request("GET", "/no/such/route")).status == 401
    # ...unless the caller is authenticated.
    assert (await client.request("GET", "/no/such/route", AUTH)).status == 404

    # /healthz and /metrics are exempt.
    assert (await client.request("GET", "/healthz")).json() == {"status": "ok"}
    reply = await client.request("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"

    # Auth runs before the body cap: an unauthenticated oversized body gets 401, not 413.
    reply = await client.request("POST", "/echo", body=b"x" * (ECHO_LIMIT + 1))
    assert reply.status == 401


async def test_auth_off_when_token_empty(serve, connect) -> None:
    client = await connect(await serve(build_app(api_token="")))
    assert (await client.request("GET", "/items/1")).status == 200


async def test_cors_allowlist(serve, connect) -> None:
    app = build_app(api_token=TOKEN, cors_origins=["https://ui.example", " https://b.example "])
    client = await connect(await serve(app))
    preflight = {
        "Origin": "https://ui.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, x-evil",
    }

    # Preflight is answered before auth (browsers never send credentials on it).
    reply = await client.request("OPTIONS", "/items", preflight)
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "https://ui.example"
    assert reply.headers["access-control-allow-methods"] == "GET, POST, PUT"
    assert reply.headers["access-control-allow-headers"] == "authorization, content-type"

    reply = await client.request("OPTIONS", "/items", {**preflight, "Origin": "https://b.example"})
    assert reply.headers["access-control-allow-origin"] == "https://b.example"

    reply = await client.request(
        "OPTIONS", "/items", {**preflight, "Origin": "https://evil.example"}
    )
    assert reply.status == 204
    assert "access-control-allow-origin" not in reply.headers
    assert "access-control-allow-methods" not in reply.headers

    reply = await client.request("GET", "/items/1", {**AUTH, "Origin": "https://ui.example"})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "https://ui.example"
    assert reply.headers["vary"] == "origin"

    # Error answers carry the CORS headers too, so the browser can show them.
    reply = await client.request("GET", "/items/1", {"Origin": "https://ui.example"})
    assert reply.status == 401
    assert reply.headers["access-control-allow-origin"] == "https://ui.example"

    reply = await client.request("GET", "/items/1", {**AUTH, "Origin": "https://evil.example"})
    assert reply.status == 200
    assert "access-control-allow-origin" not in reply.headers

    # OPTIONS without the preflight headers is an ordinary request: no route answers it.
    assert (await client.request("OPTIONS", "/items", AUTH)).status == 405


async def test_cors_permissive(serve, connect) -> None:
    client = await connect(await serve(build_app(cors_origins=["*"])))
    reply = await client.request(
        "OPTIONS",
        "/items/1",
        {
            "Origin": "https://anywhere.example",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == "*"
    assert reply.headers["access-control-allow-headers"] == "authorization, content-type"

    reply = await client.request("GET", "/state", {"Origin": "https://anywhere.example"})
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "vary" not in reply.headers


def test_cors_config_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        build_app(cors_origins=[])
    with pytest.raises(ValueError, match="empty"):
        build_app(cors_origins=["", "  "])
    with pytest.raises(ValueError, match="invalid CORS origin"):
        build_app(cors_origins=["https://a.example\r\nx: y"])


@pytest.mark.parametrize("size", [ECHO_LIMIT - 1, ECHO_LIMIT])
async def test_body_at_or_under_limit_is_accepted(serve, connect, size: int) -> None:
    client = await connect(await serve(build_app()))
    reply = await client.request("POST", "/echo", body=b"x" * size)
    assert (reply.status, reply.json()) == (200, {"size": size})
    reply = await client.request("POST", "/echo", body=b"y" * size)  # and the connection lives
    assert reply.json() == {"size": size}


async def test_content_length_over_limit_is_structured_413(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    reply = await client.request("POST", "/echo", body=b"x" * (ECHO_LIMIT + 1))
    assert reply.status == 413
    assert reply.json() == {
        "error": "payload_too_large",
        "limit_bytes": ECHO_LIMIT,
        "route": "/echo",
    }
    # A small refused body is read and dropped, so the connection carries on.
    assert "connection" not in reply.headers
    assert (await client.request("GET", "/state")).status == 200


async def test_large_refused_body_closes_connection_after_answer(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    limit = DEFAULT_BODY_LIMIT
    reply = await client.request("POST", "/items", body=b"{" * (limit + 1))
    assert reply.status == 413
    assert reply.json() == {"error": "payload_too_large", "limit_bytes": limit, "route": "/items"}
    # Too big to be worth reading: the answer says close, and the server half-closes
    # and drains before closing, so the client got the whole answer rather than a reset.
    assert reply.headers["connection"] == "close"
    assert await client.closed_by_peer()


def _chunked(body: bytes, piece: int = 300) -> bytes:
    out = b""
    for i in range(0, len(body), piece):
        chunk = body[i : i + piece]
        out += f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    return out + b"0\r\n\r\n"


CHUNKED_HEAD = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_chunked_body_limits(serve, connect) -> None:
    port = await serve(build_app())
    client = await connect(port)
    await client.send(CHUNKED_HEAD + _chunked(b"a" * (ECHO_LIMIT - 1)))
    assert (await client.read_reply()).json() == {"size": ECHO_LIMIT - 1}
    await client.send(CHUNKED_HEAD + _chunked(b"a" * ECHO_LIMIT))
    assert (await client.read_reply()).json() == {"size": ECHO_LIMIT}

    client = await connect(port)
    await client.send(CHUNKED_HEAD + _chunked(b"b" * (ECHO_LIMIT + 1)))
    reply = await client.read_reply()
    assert reply.status == 413
    assert reply.json() == {
        "error": "payload_too_large",
        "limit_bytes": ECHO_LIMIT,
        "route": "/echo",
    }
    assert await client.closed_by_peer()


async def test_expect_100_continue(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    await client.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    assert (await client.read_reply(b"POST")).status == 100
    await client.send(b"hello")
    assert (await client.read_reply(b"POST")).json() == {"size": 5}


@pytest.mark.parametrize(
    ("body", "kind", "fragment"),
    [
        (b'{"name": "w", "quantity": ', "invalid_json", "truncated"),
        (b"not json", "invalid_json", "malformed"),
        (b"", "invalid_json", "request body is empty"),
        (b'{"name": "w", "quantity": "three"}', "invalid_body", "Expected `int`, got `str`"),
        (b'{"name": "w"}', "invalid_body", "missing required field `quantity`"),
        (b"[1, 2]", "invalid_body", "Expected `object`, got `array`"),
    ],
)
async def test_bad_json_is_400_never_500(serve, connect, body: bytes, kind: str, fragment: str):
    client = await connect(await serve(build_app()))
    reply = await client.request("POST", "/items", {"Content-Type": "application/json"}, body)
    assert reply.status == 400
    error = reply.json()
    assert error["kind"] == kind
    assert error["error"].startswith("invalid JSON: ")
    assert fragment in error["error"]


async def test_query_validation(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    reply = await client.request("GET", "/page?limit=7&cursor=&wait=1")
    assert reply.json() == {"limit": 7, "cursor": "", "wait": True}
    reply = await client.request("GET", "/page")
    assert reply.json() == {"limit": 50, "cursor": None, "wait": False}

    for query, fragment in [
        ("limit=ten", "must be an integer, got 'ten'"),
        ("limit=1_000", "must be an integer"),
        ("limit=1001", "must be <= 1000, got 1001"),
        ("limit=-1", "must be >= 0, got -1"),
        ("wait=maybe", "must be true, false, 1 or 0"),
    ]:
        reply = await client.request("GET", f"/page?{query}")
        assert reply.status == 400, query
        assert reply.json()["kind"] == "invalid_query"
        assert fragment in reply.json()["error"], query


async def test_handler_exception_is_logged_500_without_traceback(serve, connect, caplog) -> None:
    client = await connect(await serve(build_app()))
    with caplog.at_level(logging.ERROR, logger="ff.http"):
        reply = await client.request("GET", "/boom")
    assert reply.status == 500
    assert reply.json() == {"error": "internal error"}
    assert b"secret" not in reply.body
    assert b"Traceback" not in reply.body
    [record] = [r for r in caplog.records if r.name == "ff.http"]
    assert "route=/boom" in record.getMessage()
    assert record.exc_info is not None
    assert "secret detail" in str(record.exc_info[1])
    assert (await client.request("GET", "/state")).status == 200


async def test_api_error_mapping(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    reply = await client.request("GET", "/teapot")
    assert reply.status == 409
    assert reply.json() == {
        "error": "contention: LeaseConflict",
        "kind": "contention",
        "retryable": True,
    }
    # An ApiError raised inside a handler's nursery arrives in an ExceptionGroup.
    reply = await client.request("GET", "/grouped")
    assert (reply.status, reply.json()) == (404, {"error": "not found: execution"})


async def test_keep_alive_100_sequential_requests(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    remotes = set()
    for i in range(100):
        reply = await client.request("GET", f"/items/{i}")
        assert reply.json()["id"] == str(i)
        remotes.add((await client.request("GET", "/peer")).json()["remote"])
    assert len(remotes) == 1


async def test_pipelined_requests_answered_in_order(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    await client.send(
        b"GET /items/first HTTP/1.1\r\nHost: t\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /items/third HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert (await client.read_reply()).json()["id"] == "first"
    assert (await client.read_reply(b"POST")).json() == {"size": 3}
    assert (await client.read_reply()).json()["id"] == "third"


async def test_500_concurrent_connections(serve) -> None:
    port = await serve(build_app())
    statuses: list[int] = []

    async def one(i: int) -> None:
        client = await RawClient.connect(port)
        try:
            reply = await client.request("GET", f"/items/{i}")
            assert reply.json()["id"] == str(i)
            statuses.append(reply.status)
        finally:
            await client.aclose()

    with trio.fail_after(15):
        async with trio.open_nursery() as nursery:
            for i in range(500):
                nursery.start_soon(one, i)
    assert statuses == [200] * 500


async def test_connection_limit_makes_new_connections_wait(serve, connect) -> None:
    port = await serve(build_app(), max_connections=2)
    first, second = await connect(port), await connect(port)
    assert (await first.request("GET", "/state")).status == 200
    assert (await second.request("GET", "/state")).status == 200

    third = await connect(port)  # the kernel completes the handshake; the server does not accept
    await third.send(b"GET /state HTTP/1.1\r\nHost: t\r\n\r\n")
    with trio.move_on_after(0.3) as waited:
        await third.read_reply()
    assert waited.cancelled_caught

    await first.aclose()
    with trio.fail_after(2):
        assert (await third.read_reply()).status == 200


async def test_stalled_head_times_out(serve, connect) -> None:
    client = await connect(await serve(build_app(), header_timeout=0.3))
    await client.send(b"GET /state HTTP/1.1\r\nHost: t\r\n")  # no blank line
    with trio.fail_after(2):
        reply = await client.read_reply()
    assert reply.status == 408
    assert reply.json()["kind"] == "timeout"
    assert await client.closed_by_peer()


async def test_slow_loris_dribbling_head_still_times_out(serve, connect) -> None:
    client = await connect(await serve(build_app(), header_timeout=0.4))
    with trio.fail_after(3):
        for byte in b"GET /state HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                await client.send(bytes([byte]))
            except trio.BrokenResourceError:
                break
            await trio.sleep(0.02)
        assert await client.closed_by_peer()


async def test_stalled_body_times_out(serve, connect) -> None:
    client = await connect(await serve(build_app(), request_timeout=0.3))
    await client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
    with trio.fail_after(2):
        reply = await client.read_reply(b"POST")
    assert reply.status == 408
    assert await client.closed_by_peer()


async def test_idle_keep_alive_connection_is_closed(serve, connect) -> None:
    client = await connect(await serve(build_app(), idle_timeout=0.3))
    assert (await client.request("GET", "/state")).status == 200
    with trio.fail_after(2):
        assert await client.closed_by_peer()


async def test_slow_handler_gets_503_and_route_timeout_overrides(serve, connect) -> None:
    client = await connect(await serve(build_app(), request_timeout=0.2))
    reply = await client.request("GET", "/slow?seconds=1")
    assert reply.status == 503
    assert reply.json() == {"error": "request timed out", "kind": "timeout", "retryable": True}
    reply = await client.request("GET", "/patient?seconds=0.4")
    assert (reply.status, reply.json()) == (200, "done")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /state HTTP/1.1\r\nHost: t\r\nBad Header Name: x\r\n\r\n", 400),
        (b"GET /state HTTP/1.1\r\nHost: t\r\nContent-Length: nope\r\n\r\n", 400),
        (b"GET /state HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    ],
)
async def test_malformed_http_is_400_and_close(serve, connect, raw: bytes, status: int) -> None:
    client = await connect(await serve(build_app()))
    await client.send(raw)
    reply = await client.read_reply()
    assert reply.status == status
    assert reply.json()["kind"] == "bad_request"
    assert await client.closed_by_peer()


async def test_graceful_shutdown_finishes_in_flight_request() -> None:
    app = build_app()
    shutdown = trio.Event()
    results: dict[str, object] = {}
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            partial(serve_http, app, "127.0.0.1", 0, shutdown=shutdown, shutdown_grace=3.0)
        )
        idle = await RawClient.connect(port)
        assert (await idle.request("GET", "/state")).status == 200

        async def slow_call() -> None:
            client = await RawClient.connect(port)
            results["reply"] = await client.request("GET", "/slow?seconds=0.5")
            results["closed"] = await client.closed_by_peer()

        nursery.start_soon(slow_call)
        await trio.sleep(0.1)
        started = trio.current_time()
        shutdown.set()
        # The idle keep-alive connection is closed at once, not after the grace period.
        assert await idle.closed_by_peer(within=0.3)
        await trio.sleep(0.05)
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
    reply = results["reply"]
    assert (reply.status, reply.json()) == (200, "done")
    assert reply.headers["connection"] == "close"
    assert results["closed"] is True
    assert trio.current_time() - started < 2.0


async def test_cancelling_serve_task_drains_then_cancels_after_grace() -> None:
    app = build_app()
    replies: list[object] = []
    serve_scope = trio.CancelScope()

    async def run_server(task_status: trio.TaskStatus[int]) -> None:
        with serve_scope:
            await serve_http(app, "127.0.0.1", 0, shutdown_grace=0.4, task_status=task_status)

    async def call(port: int, seconds: float) -> None:
        client = await RawClient.connect(port)
        try:
            replies.append((await client.request("GET", f"/slow?seconds={seconds}")).status)
        except Exception as exc:
            replies.append(type(exc).__name__)

    async with trio.open_nursery() as nursery:
        port = await nursery.start(run_server)
        nursery.start_soon(call, port, 0.3)  # finishes within the grace period
        nursery.start_soon(call, port, 5.0)  # does not: cancelled, connection closed
        await trio.sleep(0.1)
        started = trio.current_time()
        serve_scope.cancel()
    assert serve_scope.cancelled_caught
    # The 5 s request was cut at the grace deadline: the connection closed without an answer.
    assert replies == [200, "RemoteProtocolError"]
    assert trio.current_time() - started < 1.0


async def test_metrics_count_requests_per_route_template(serve, connect) -> None:
    from ff.http._metrics import REQUESTS

    before = REQUESTS.value(method="GET", path="/items/{id}", status=200)
    before_404 = REQUESTS.value(method="GET", path="unknown", status=404)
    client = await connect(await serve(build_app()))
    for i in range(3):
        await client.request("GET", f"/items/{i}")
    await client.request("GET", "/missing")
    assert REQUESTS.value(method="GET", path="/items/{id}", status=200) == before + 3
    assert REQUESTS.value(method="GET", path="unknown", status=404) == before_404 + 1

    text = (await client.request("GET", "/metrics")).body.decode()
    line = f'ff_http_requests_total{{method="GET",path="/items/{{id}}",status="200"}} {before + 3}'
    assert line in text.splitlines()
    assert "# TYPE ff_http_request_duration_seconds histogram" in text
    count_line = (
        'ff_http_request_duration_seconds_count{method="GET",path="/items/{id}",status="200"}'
    )
    assert any(row.startswith(count_line) for row in text.splitlines())


async def test_openapi_document(serve, connect) -> None:
    client = await connect(await serve(build_app()))
    reply = await client.request("GET", "/v1/openapi.json")
    assert reply.status == 200
    doc = msgspec.json.decode(reply.body)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "toy", "version": "0.1.0"}
    assert set(doc["paths"]) >= {"/items", "/items/{id}", "/echo", "/state", "/raw"}
    assert set(doc["paths"]["/items/{id}"]) == {"get", "put"}

    create = doc["paths"]["/items"]["post"]
    assert create["summary"] == "Create an item"
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/Item"}
    created = create["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/Created"}
    assert create["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PayloadTooLarge"
    }

    schemas = doc["components"]["schemas"]
    assert schemas["Item"]["required"] == ["name", "quantity"]
    assert schemas["Item"]["properties"]["quantity"] == {"type": "integer"}
    assert set(schemas["ErrorBody"]["properties"]) == {"error", "kind", "retryable"}
    get_item = doc["paths"]["/items/{id}"]["get"]
    assert get_item["parameters"] == [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    raw = doc["paths"]["/raw"]["get"]["responses"]["200"]["content"]
    assert raw == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}

    # Every $ref in the document resolves to a component.
    refs = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    assert refs and refs <= set(schemas)


async def test_app_without_sockets() -> None:
    """The pipeline is usable in-process: handle() runs start/dispatch/complete."""
    app = HttpApp(build_app().router, api_token=TOKEN)
    assert (await app.handle("GET", "/state", {"authorization": f"Bearer {TOKEN}"})).body == b'"Ok"'
    assert (await app.handle("GET", "/state")).status == 401
    response = await app.handle("POST", "/echo", dict(AUTH_LOWER), b"z" * (ECHO_LIMIT + 1))
    assert response.status == 413
