"""Request head limits on the real API: too many headers or too large a head is a 431 and a
closed connection, before auth or any handler runs."""

from __future__ import annotations

import pytest
import trio

from tests.api.conftest import running_api

pytestmark = pytest.mark.compat


def head(headers: int, value_size: int = 8) -> bytes:
    lines = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * value_size) for i in range(headers))
    return b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + lines + b"\r\n"


async def test_header_count_and_size_limits(server_url: str) -> None:
    async with running_api(server_url, max_header_count=50) as api:
        raw = await api.raw()
        await raw.send(head(40))
        with trio.fail_after(5):
            assert (await raw.read_reply()).status == 200
        await raw.send(head(60))
        with trio.fail_after(5):
            reply = await raw.read_reply()
        assert reply.status == 431
        assert reply.json()["error"] == "too many request headers"
        assert await raw.closed_by_peer()
        await raw.aclose()

        raw = await api.raw()
        await raw.send(head(4, value_size=6000))  # 24 KB head, over the 16 KiB default
        with trio.fail_after(5):
            reply = await raw.read_reply()
        assert reply.status == 431
        assert await raw.closed_by_peer()
        await raw.aclose()


async def test_default_header_count_limit_is_100(server_url: str) -> None:
    async with running_api(server_url) as api:
        raw = await api.raw()
        await raw.send(head(101))
        with trio.fail_after(5):
            assert (await raw.read_reply()).status == 431
        await raw.aclose()
