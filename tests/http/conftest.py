"""Fixtures for the HTTP front-end tests: a server on 127.0.0.1 and raw socket clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio

from ff.http import HttpApp, serve_http
from tests.http.httptoy import RawClient

Serve = Callable[..., Awaitable[int]]


@pytest.fixture
async def serve(nursery: trio.Nursery) -> Serve:
    """`port = await serve(app, **serve_http_kwargs)`; the server stops with the test."""

    async def start(app: HttpApp, **kwargs: Any) -> int:
        kwargs.setdefault("shutdown_grace", 0.5)
        port: int = await nursery.start(partial(serve_http, app, "127.0.0.1", 0, **kwargs))
        return port

    return start


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[int], Awaitable[RawClient]]]:
    """`client = await connect(port)`; every raw client is closed after the test."""
    clients: list[RawClient] = []

    async def open_client(port: int) -> RawClient:
        client = await RawClient.connect(port)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.aclose()
