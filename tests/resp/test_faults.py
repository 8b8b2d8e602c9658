"""Failures: the server dies mid-pipeline or is down, credentials are wrong.

Callers must get a typed error promptly (not after the command timeout) and the pool
must come back by itself once the server does.
"""

from __future__ import annotations

import pytest
import trio

from ff.embedded import EmbeddedServer, free_loopback_port
from ff.resp import Client, errors

pytestmark = pytest.mark.compat

BUSY_SCRIPT = "local i = 0 while i < 3e7 do i = i + 1 end return i"


async def wait_until_up(client: Client, limit: float = 8.0) -> float:
    """Seconds until a command succeeds again (failing the test after `limit`)."""
    start = trio.current_time()
    with trio.fail_after(limit):
        while True:
            try:
                assert await client.execute("PING") == b"PONG"
                return trio.current_time() - start
            except errors.ConnectionError:
                await trio.sleep(0.02)


async def test_server_killed_mid_pipeline(fault_server: EmbeddedServer) -> None:
    async with Client.from_url(fault_server.url, command_timeout=10) as client:
        await client.execute("SET", "survivor", "yes")
        outcomes: list[BaseException] = []

        async def in_flight(n: int) -> None:
            pipe = client.pipeline()
            # The busy script holds the reply to everything queued behind it.
            pipe.execute_command("EVAL", BUSY_SCRIPT, 0)
            for i in range(100):
                pipe.execute_command("ECHO", f"{n}:{i}")
            try:
                await pipe.run()
            except errors.RespError as exc:
                outcomes.append(exc)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(in_flight, n)
            await trio.sleep(0.1)
            killed_at = trio.current_time()
            fault_server.kill()
        failed_after = trio.current_time() - killed_at
        assert len(outcomes) == 20
        assert all(isinstance(e, errors.ConnectionError) and e.retryable for e in outcomes)
        assert failed_after < 1.0  # promptly, not after the 10 s command timeout

        # While the server is down, calls fail fast with a typed error.
        for _ in range(5):
            start = trio.current_time()
            with pytest.raises(errors.ConnectionError):
                await client.execute("PING")
            assert trio.current_time() - start < 0.5

        await fault_server.start()
        assert await wait_until_up(client) < 3.0  # backoff is capped at 2 s
        assert await client.execute("GET", "survivor") == b"yes"
        # The whole pool is healthy again: concurrent traffic works.
        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(client.execute, "INCR", "after")
        assert await client.execute("GET", "after") == b"50"


async def test_server_down_from_the_start(fault_server: EmbeddedServer) -> None:
    fault_server.kill()
    async with Client.from_url(fault_server.url) as client:
        start = trio.current_time()
        with pytest.raises(errors.ConnectionError):
            await client.execute("PING")
        assert trio.current_time() - start < 1.0
        await fault_server.start()
        await wait_until_up(client)


async def test_nothing_listening() -> None:
    url = f"redis://127.0.0.1:{free_loopback_port()}/0"
    async with Client.from_url(url, connect_timeout=1) as client:
        with pytest.raises(errors.ConnectionError) as info:
            await client.execute("PING")
    assert info.value.retryable and isinstance(info.value, ConnectionError)


async def test_wrong_password(auth_server: EmbeddedServer) -> None:
    url = f"redis://default:wrong@127.0.0.1:{auth_server.port}/0"
    async with Client.from_url(url) as client:
        with pytest.raises(errors.AuthenticationError) as info:
            await client.execute("PING")
    assert info.value.prefix == "WRONGPASS"
    client = Client.from_url(url)
    with pytest.raises(errors.AuthenticationError):
        async with client.dedicated():
            pass


async def test_missing_password(auth_server: EmbeddedServer) -> None:
    async with Client.from_url(f"redis://127.0.0.1:{auth_server.port}/0") as client:
        with pytest.raises(errors.AuthenticationError) as info:
            await client.execute("PING")
    assert info.value.prefix == "NOAUTH"


async def test_subscription_reports_a_dead_server(fault_server: EmbeddedServer) -> None:
    async with Client.from_url(fault_server.url) as client, client.subscribe("c") as sub:
        fault_server.kill()
        with trio.fail_after(2), pytest.raises(errors.ConnectionError):
            await sub.__anext__()
