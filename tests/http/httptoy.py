"""The toy app and raw client the HTTP front-end tests share (fixtures are in conftest.py).

The toy routes exercise the machinery only (no engine): JSON in and out, bare strings, raw
bytes, 204, per-route body caps, errors, slow handlers. `RawClient` speaks bytes over a real
socket and parses answers with an h11 client state machine, so tests can send malformed,
partial, chunked and pipelined requests that a well-behaved client never would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h11
import msgspec
import trio

from ff.http import (
    ApiError,
    HttpApp,
    Request,
    Response,
    Router,
    decode_json,
    empty_response,
    json_response,
    metrics_handler,
    openapi_handler,
    query_bool,
    query_int,
    query_str,
    raw_response,
)

ECHO_LIMIT = 1024


class Item(msgspec.Struct):
    name: str
    quantity: int
    tags: list[str] = []


class Created(msgspec.Struct):
    Created: Item


class Page(msgspec.Struct):
    limit: int
    cursor: str | None
    wait: bool


async def get_item(request: Request) -> Response:
    return json_response(200, {"id": request.path_params["id"], "route": request.route})


async def create_item(request: Request) -> Response:
    item = decode_json(request, Item)
    return json_response(201, Created(item))


async def echo_size(request: Request) -> Response:
    return json_response(200, {"size": len(request.body)})


async def state(request: Request) -> Response:
    return json_response(200, "Ok")


async def raw(request: Request) -> Response:
    return raw_response(200, b"\x00\xff raw \x80")


async def no_work(request: Request) -> Response:
    return empty_response(204)


async def boom(request: Request) -> Response:
    raise RuntimeError("secret detail from deep inside")


async def teapot(request: Request) -> Response:
    raise ApiError(409, "contention: LeaseConflict", kind="contention", retryable=True)


async def grouped_error(request: Request) -> Response:
    async def fail() -> None:
        raise ApiError(404, "not found: execution")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fail)
    raise AssertionError("unreachable")


async def slow(request: Request) -> Response:
    await trio.sleep(float(query_str(request, "seconds", "0.5")))
    return json_response(200, "done")


async def page(request: Request) -> Response:
    return json_response(
        200,
        Page(
            limit=query_int(request, "limit", 50, minimum=0, maximum=1000),
            cursor=query_str(request, "cursor"),
            wait=query_bool(request, "wait"),
        ),
    )


async def peer(request: Request) -> Response:
    return json_response(200, {"remote": request.remote})


async def healthz(request: Request) -> Response:
    return json_response(200, {"status": "ok"})


def build_router() -> Router:
    router = Router()
    router.add("GET", "/healthz", healthz)
    router.add("GET", "/metrics", metrics_handler())
    router.add("GET", "/v1/openapi.json", openapi_handler(router, title="toy"))
    router.add("GET", "/items/{id}", get_item, summary="Read an item")
    router.add("PUT", "/items/{id}", get_item)
    router.add(
        "POST",
        "/items",
        create_item,
        request_type=Item,
        response_type=Created,
        response_status=201,
        summary="Create an item",
    )
    router.add("POST", "/echo", echo_size, body_limit=ECHO_LIMIT)
    router.add("GET", "/state", state, response_type=str)
    router.add("GET", "/raw", raw, response_type=bytes)
    router.add("POST", "/claim", no_work, response_status=204)
    router.add("GET", "/boom", boom)
    router.add("GET", "/teapot", teapot)
    router.add("GET", "/grouped", grouped_error)
    router.add("GET", "/slow", slow)
    router.add("GET", "/patient", slow, timeout=5.0)
    router.add("GET", "/page", page, response_type=Page)
    router.add("GET", "/peer", peer)
    return router


def build_app(**kwargs: Any) -> HttpApp:
    return HttpApp(build_router(), **kwargs)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class RawClient:
    """Bytes out as given; answers parsed in order by an h11 client."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def read_reply(self, method: bytes = b"GET") -> Reply:
        """Parse the next answer (the raw bytes were already sent; h11 is told after the fact)."""
        conn = self.h11
        if conn.our_state is h11.IDLE:
            conn.send(h11.Request(method=method, target="/", headers=[("host", "t")]))
            conn.send(h11.EndOfMessage())
        status, headers, chunks = 0, {}, []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.InformationalResponse):
                return Reply(event.status_code, {}, b"")
            else:
                raise AssertionError(f"unexpected {event!r}")
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        return Reply(status, headers, b"".join(chunks))

    async def request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> Reply:
        lines = [f"{method} {target} HTTP/1.1", "Host: t"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return await self.read_reply(method.encode())

    async def closed_by_peer(self, within: float = 2.0) -> bool:
        """True if the server closes the connection (EOF or reset) within `within` seconds."""
        with trio.move_on_after(within):
            try:
                while await self.stream.receive_some(65536):
                    pass
            except trio.BrokenResourceError:
                pass
            return True
        return False

    async def aclose(self) -> None:
        await self.stream.aclose()
