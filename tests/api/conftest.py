"""Fixtures for API tests: a booted Server behind `serve_http(build_app(...))` on a real
socket, and typed and raw clients for it. Scanners are off: tests drive the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import trio

from ff.client import ApiClient
from ff.http import build_app, serve_http
from ff.server import Server
from tests.engine.conftest import engine_config
from tests.http.httptoy import RawClient


@dataclass
class Api:
    server: Server
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def raw(self) -> RawClient:
        return await RawClient.connect(self.port)


async def writes(api: Api) -> int:
    """Valkey's count of writes so far (the test servers never save, so it only grows): a
    request that must change nothing leaves it where it was."""
    info = await api.server.client.execute("INFO", "persistence")
    text = info.decode() if isinstance(info, bytes) else str(info)
    [line] = [ln for ln in text.splitlines() if ln.startswith("rdb_changes_since_last_save:")]
    return int(line.split(":")[1])


@asynccontextmanager
async def running_api(
    server_url: str, *, config: dict[str, Any] | None = None, **serve_options: Any
) -> AsyncIterator[Api]:
    """A Server on `server_url` (`config` overrides engine_config) served on a free port."""
    serve_options.setdefault("shutdown_grace", 0.5)
    async with (
        Server.running(engine_config(server_url, **(config or {}))) as server,
        trio.open_nursery() as nursery,
    ):
        port = await nursery.start(
            partial(serve_http, build_app(server), "127.0.0.1", 0, **serve_options)
        )
        yield Api(server, port)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def api(server_url: str) -> AsyncIterator[Api]:
    async with running_api(server_url) as api:
        yield api


@pytest.fixture
async def client(api: Api) -> AsyncIterator[ApiClient]:
    async with ApiClient(api.url) as client:
        yield client


@pytest.fixture
async def raw(api: Api) -> AsyncIterator[RawClient]:
    """One raw keep-alive connection to the API."""
    client = await api.raw()
    try:
        yield client
    finally:
        await client.aclose()
