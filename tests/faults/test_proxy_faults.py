"""ff's Valkey connections through a proxy that cuts, stalls and slows them.

Callers get a typed error (`ConnectionError` or `TimeoutError`, both retryable) within
their timeout, never a reply meant for another caller; the pool serves again once the
connection does; a worker whose renewals cannot get through cancels its handler before
the lease would have run out (docs/worker.md, "Leases").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlparse

import pytest
import trio

from ff.resp import Client, errors
from ff.server import Server
from ff.worker import LeaseLostError, Worker
from tests.engine.conftest import engine_config, submit
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.faults, pytest.mark.compat]

CALLERS = 24
MARGIN_S = 0.5  # scheduling slack on a shared 2-core machine


@pytest.fixture
async def proxy(server_url: str) -> AsyncIterator[tuple[FaultProxy, str]]:
    """A proxy to the test database's server, and the database's URL through it."""
    parsed = urlparse(server_url)
    assert parsed.port is not None
    async with FaultProxy(parsed.port) as proxy:
        yield proxy, proxy.url(parsed.path.strip("/") or 0)


class Tally:
    def __init__(self) -> None:
        self.ok = 0
        self.failed: list[BaseException] = []
        self.wrong: list[tuple[object, object]] = []
        self.slowest_failure = 0.0

    async def echo(self, client: Client, text: str, timeout: float) -> None:
        """One ECHO and a pipeline of three: each reply must be the caller's own."""
        start = trio.current_time()
        expected = [text.encode(), *(f"{text}/{i}".encode() for i in range(3))]
        try:
            got = [await client.execute("ECHO", text)]
            pipe = client.pipeline()
            for i in range(3):
                pipe.execute_command("ECHO", f"{text}/{i}")
            got += await pipe.run()
        except (errors.ConnectionError, errors.TimeoutError) as exc:
            assert exc.retryable, exc
            self.failed.append(exc)
            self.slowest_failure = max(self.slowest_failure, trio.current_time() - start)
            return
        if got != expected:
            self.wrong.append((expected, got))
        else:
            self.ok += 1


async def serves_again(client: Client, limit: float = 5.0) -> None:
    with trio.fail_after(limit):
        while True:
            try:
                assert await client.execute("ECHO", "back") == b"back"
                return
            except (errors.ConnectionError, errors.TimeoutError):
                await trio.sleep(0.02)


async def test_cut_connections_fail_typed_and_never_cross_replies(
        proxy: tuple[FaultProxy, str]) -> None:
    fault, url = proxy
    tally = Tally()
    cuts = 0
    async with Client.from_url(url, command_timeout=2.0, pool_size=4) as client:

        async def caller(n: int) -> None:
            for i in range(10**9):
                failures = len(tally.failed)
                await tally.echo(client, f"{n}:{i}", 2.0)
                await trio.sleep(0.01 if len(tally.failed) > failures else 0)  # a retry pause

        async with trio.open_nursery() as nursery:
            for n in range(CALLERS):
                nursery.start_soon(caller, n)
            # Cut while callers are busy, then wait for the pool to serve again (each
            # slot reconnects on its own; a connection that dies young backs off).
            for _ in range(6):
                await trio.sleep(0.2)
                cuts += fault.cut()
                await serves_again(client)
            nursery.cancel_scope.cancel()
    print(f"{cuts} connections cut, {tally.ok} answered right, {len(tally.failed)} failed "
          f"typed (slowest {tally.slowest_failure:.2f} s), {len(tally.wrong)} wrong")
    assert tally.wrong == []
    assert cuts >= 6 and tally.failed and tally.ok > 0, (cuts, len(tally.failed), tally.ok)
    assert all(isinstance(e, errors.ConnectionError) for e in tally.failed), tally.failed[:3]
    assert tally.slowest_failure < 2.0 + MARGIN_S


async def test_stalled_connections_time_out_and_late_replies_reach_nobody(
        proxy: tuple[FaultProxy, str]) -> None:
    fault, url = proxy
    tally = Tally()
    async with Client.from_url(url, command_timeout=0.3, pool_size=4) as client:
        await serves_again(client)
        fault.stall()
        async with trio.open_nursery() as nursery:
            for n in range(CALLERS):
                nursery.start_soon(tally.echo, client, f"stalled-{n}", 0.3)
        assert tally.ok == 0 and len(tally.failed) == CALLERS
        # The first caller to time out drops its connection; callers still waiting on
        # that connection learn it is gone (ConnectionError) at that moment.
        assert any(isinstance(e, errors.TimeoutError) for e in tally.failed)
        assert tally.slowest_failure < 0.3 + MARGIN_S
        fault.resume()  # the held replies arrive now, on connections the pool dropped
        after = Tally()
        async with trio.open_nursery() as nursery:
            for n in range(CALLERS):
                nursery.start_soon(after.echo, client, f"after-{n}", 2.0)
        assert after.wrong == [] and after.ok == CALLERS, (after.wrong, after.failed)


async def test_slow_connections_answer_right_or_time_out(
        proxy: tuple[FaultProxy, str]) -> None:
    fault, url = proxy
    async with Client.from_url(url, command_timeout=2.0, pool_size=4) as client:
        await serves_again(client)
        fault.delay = 0.05
        slow = Tally()
        async with trio.open_nursery() as nursery:
            for n in range(CALLERS):
                nursery.start_soon(slow.echo, client, f"slow-{n}", 2.0)
        assert slow.wrong == [] and slow.ok == CALLERS, (slow.wrong, slow.failed)
        start = trio.current_time()
        with pytest.raises(errors.TimeoutError):
            await client.execute("ECHO", "too slow", timeout=0.02)
        assert trio.current_time() - start < 0.02 + MARGIN_S
        fault.delay = 0.0
        assert await client.execute("ECHO", "fast") == b"fast"


async def test_worker_cancels_its_handler_when_renewals_stall(
        server_url: str, proxy: tuple[FaultProxy, str]) -> None:
    """The connection stays open but nothing comes back: the worker must not wait for its
    command timeout; the handler is cancelled by the time the lease would run out."""
    fault, url = proxy
    ttl_ms = 900
    async with Server.running(engine_config(server_url)) as server:
        await submit(server)
        async with Worker.connect(url, worker_id="p", lease_ttl_ms=ttl_ms) as worker:
            task = await worker.claim_next()
            assert task is not None
            fault.stall()
            stalled_at = trio.current_time()
            with trio.fail_after(5), task.lease_scope() as scope:
                await trio.sleep(30)
            assert scope.cancelled_caught
            assert trio.current_time() - stalled_at < ttl_ms / 1000 + MARGIN_S
            assert task.lease_lost is not None and task.lease_lost.code == "lease_unrenewable"
            fault.resume()
            with pytest.raises(LeaseLostError):
                await task.complete()
