"""`GET /metrics` publishes the server's RESP pool (`ff_resp_pool_*`), read at each scrape:
live connections, then errors while Valkey is down, then the reconnects that brought it back."""

from __future__ import annotations

import pytest
import trio

from ff.client import ApiClient
from ff.embedded import EmbeddedServer
from tests.api.conftest import running_api


def samples(text: str) -> dict[str, float]:
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith("ff_resp_pool_")}


@pytest.mark.compat
async def test_metrics_follow_the_pool_through_an_outage(fault_server: EmbeddedServer) -> None:
    async with running_api(fault_server.url, config={"pool_size": 2}) as api, \
            ApiClient(api.url) as client:

        async def scrape() -> dict[str, float]:
            return samples((await client.request("GET", "/metrics")).body.decode())

        await client.health()
        with trio.fail_after(5):
            while (healthy := await scrape())["ff_resp_pool_connections"] < 2:
                await trio.sleep(0.02)
        assert healthy == {
            "ff_resp_pool_size": 2, "ff_resp_pool_connections": 2, "ff_resp_pool_waiters": 0,
            "ff_resp_pool_pending_replies": 0, "ff_resp_pool_reconnects_total": 0,
            "ff_resp_pool_errors_total": 0, "ff_resp_pool_last_error_timestamp_seconds": 0}

        fault_server.kill()
        with trio.fail_after(5):
            while (down := await scrape())["ff_resp_pool_connections"] > 0:
                await trio.sleep(0.02)
        assert down["ff_resp_pool_errors_total"] >= 2
        assert down["ff_resp_pool_last_error_timestamp_seconds"] > 0

        await fault_server.start()
        with trio.fail_after(8):
            while (back := await scrape())["ff_resp_pool_connections"] < 2:
                await trio.sleep(0.05)
        assert back["ff_resp_pool_reconnects_total"] == 2
