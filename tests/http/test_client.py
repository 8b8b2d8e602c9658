"""HttpClient against the real server: keep-alive reuse, limits, timeouts, error mapping."""

from __future__ import annotations

from functools import partial

import msgspec
import pytest
import trio

from ff.client import HttpClient, HttpError, HttpStatusError, HttpTimeout
from tests.http.httptoy import Item, build_app

TOKEN = "client-token"


async def test_reuses_one_connection_for_sequential_requests(serve) -> None:
    port = await serve(build_app())
    async with HttpClient(f"http://127.0.0.1:{port}") as client:
        remotes = {(await client.request("GET", "/peer")).json()["remote"] for _ in range(20)}
    assert len(remotes) == 1


async def test_concurrent_requests_open_at_most_max_connections(serve) -> None:
    port = await serve(build_app())
    remotes: set[str] = set()
    async with HttpClient(f"http://127.0.0.1:{port}", max_connections=3) as client:

        async def call() -> None:
            assert (await client.request("GET", "/slow?seconds=0.05")).json() == "done"
            remotes.add((await client.request("GET", "/peer")).json()["remote"])

        async with trio.open_nursery() as nursery:
            for _ in range(12):
                nursery.start_soon(call)
    assert 1 <= len(remotes) <= 3


async def test_json_body_token_and_typed_decode(serve) -> None:
    port = await serve(build_app(api_token=TOKEN))
    async with HttpClient(f"http://127.0.0.1:{port}/", token=TOKEN) as client:
        response = await client.request("POST", "/items", json=Item("bolt", 12, ["m6"]))
        assert response.status == 201
        assert response.headers["content-type"] == "application/json"
        created = response.raise_for_status().json()
        assert created == {"Created": {"name": "bolt", "quantity": 12, "tags": ["m6"]}}
        assert (await client.request("GET", "/state")).json(str) == "Ok"
        raw = await client.request("GET", "/raw")
        assert raw.body == b"\x00\xff raw \x80"
        page = await client.request("GET", "/page")
        with pytest.raises(msgspec.ValidationError, match="Expected `int`, got `object`"):
            page.json(int)


async def test_status_error_carries_error_body_fields(serve) -> None:
    port = await serve(build_app(api_token=TOKEN))
    async with HttpClient(f"http://127.0.0.1:{port}") as client:
        response = await client.request("GET", "/items/1")
        assert response.status == 401
        with pytest.raises(HttpStatusError) as caught:
            response.raise_for_status()
        assert caught.value.status == 401
        assert caught.value.error == "missing or invalid Authorization header"
        assert caught.value.kind is None

        response = await client.request(
            "GET", "/teapot", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with pytest.raises(HttpStatusError) as caught:
            response.raise_for_status()
        assert (caught.value.status, caught.value.kind, caught.value.retryable) == (
            409,
            "contention",
            True,
        )


async def test_replaces_connection_closed_by_server_while_idle(serve) -> None:
    port = await serve(build_app(), idle_timeout=0.1)
    async with HttpClient(f"http://127.0.0.1:{port}") as client:
        first = (await client.request("GET", "/peer")).json()["remote"]
        await trio.sleep(0.3)  # the server closes the idle connection
        response = await client.request("POST", "/echo", body=b"abc")  # not retryable: must
        assert response.json() == {"size": 3}  # go out on a fresh connection at once
        second = (await client.request("GET", "/peer")).json()["remote"]
    assert first != second


async def test_timeout_and_connection_refused_are_http_errors(serve) -> None:
    port = await serve(build_app())
    async with HttpClient(f"http://127.0.0.1:{port}", timeout=0.2) as client:
        with pytest.raises(HttpTimeout, match=r"no response within 0\.2s"):
            await client.request("GET", "/slow?seconds=2")
        # The timed-out connection was discarded; the client still works.
        assert (await client.request("GET", "/state")).json() == "Ok"

    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        unused_port = sock.getsockname()[1]
    async with HttpClient(f"http://127.0.0.1:{unused_port}") as client:
        with pytest.raises(HttpError) as caught:
            await client.request("GET", "/state")
        assert not isinstance(caught.value, HttpTimeout)
        assert isinstance(caught.value.__cause__, OSError)


async def test_closed_client_and_bad_arguments() -> None:
    with pytest.raises(ValueError, match="http://"):
        HttpClient("https://example.com")
    client = HttpClient("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="not both"):
        await client.request("POST", "/x", json={}, body=b"")
    await client.aclose()
    with pytest.raises(HttpError, match="closed"):
        await client.request("GET", "/state")


async def _drop_second_request(stream: trio.SocketStream) -> None:
    """A keep-alive server that answers a connection's first request and then closes on the
    second without answering: the race a client loses when it reuses a connection that the
    server is just closing."""
    buffer = b""
    answered = 0
    async with stream:
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                if answered == 1:
                    return
                await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                answered += 1


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
async def test_reused_connection_lost_before_answer(nursery, method: str, retried: bool) -> None:
    [listener] = await nursery.start(
        partial(trio.serve_tcp, _drop_second_request, 0, host="127.0.0.1")
    )
    port = listener.socket.getsockname()[1]
    async with HttpClient(f"http://127.0.0.1:{port}") as client:
        assert (await client.request(method, "/")).body == b"ok"
        if retried:  # idempotent: silently repeated on a fresh connection
            assert (await client.request(method, "/")).body == b"ok"
        else:  # not idempotent: the caller decides, the error says what happened
            with pytest.raises(HttpError, match="connection lost"):
                await client.request(method, "/")
