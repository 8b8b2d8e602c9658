"""`Client.stats()`: the pool's live connections, waiting callers, replies owed, reconnects
and last error, through a server that dies and comes back."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import trio
import trio.testing

from ff.embedded import EmbeddedServer
from ff.resp import Client, PoolStats, errors
from tests.resp.test_faults import BUSY_SCRIPT, wait_until_up


async def wait_for_stats(client: Client, ready: Callable[[PoolStats], bool],
                         limit: float = 8.0) -> PoolStats:
    """The first snapshot for which `ready` holds."""
    with trio.fail_after(limit):
        while not ready(stats := client.stats()):
            await trio.sleep(0.02)
    return stats


@pytest.mark.compat
async def test_errors_and_reconnects_are_counted(fault_server: EmbeddedServer) -> None:
    async with Client.from_url(fault_server.url, pool_size=2) as client:
        assert client.stats() == PoolStats(
            address=f"127.0.0.1:{fault_server.port}", size=2, connections=0, waiters=0,
            pending_replies=0, reconnects=0, errors=0)
        await client.execute("PING")
        healthy = await wait_for_stats(client, lambda s: s.connections == 2)
        assert (healthy.reconnects, healthy.errors, healthy.last_error) == (0, 0, None)

        killed_at = time.time()
        fault_server.kill()
        down = await wait_for_stats(client, lambda s: s.connections == 0 and s.errors >= 2)
        assert down.last_error is not None and down.last_error.startswith("ConnectionError")
        assert down.last_error_at is not None and down.last_error_at >= killed_at - 1
        with pytest.raises(errors.ConnectionError):
            await client.execute("PING")

        await fault_server.start()
        await wait_until_up(client)
        back = await wait_for_stats(client, lambda s: s.connections == 2)
        assert back.reconnects == 2  # one per slot, however many attempts failed before
        assert back.errors >= down.errors and back.last_error == client.stats().last_error
    assert client.stats().errors == back.errors  # closing the client is not a failure


async def test_waiters_and_pending_replies(server_url: str) -> None:
    silent = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = silent.socket.getsockname()[1]
    async with silent, Client.from_url(f"redis://127.0.0.1:{port}/0", connect_timeout=30) as mute:
        async with trio.open_nursery() as nursery:
            for _ in range(3):  # the handshake never gets an answer: all three wait
                nursery.start_soon(mute.execute, "PING")
            await trio.testing.wait_all_tasks_blocked()
            assert (mute.stats().waiters, mute.stats().connections) == (3, 0)
            nursery.cancel_scope.cancel()
        assert mute.stats().waiters == 0

    async with Client.from_url(server_url, pool_size=1) as client:
        await client.execute("PING")
        async with trio.open_nursery() as nursery:
            pipe = client.pipeline()
            pipe.execute_command("EVAL", BUSY_SCRIPT, 0)
            pipe.execute_command("ECHO", "a").execute_command("ECHO", "b")
            nursery.start_soon(pipe.run)
            await trio.sleep(0.05)  # the busy script holds all three replies
            assert client.stats().pending_replies == 3
        assert client.stats().pending_replies == 0
