"""Client features against a real server: pipelines, transactions, SCAN, functions,
pub/sub, dedicated connections and the client's lifecycle."""

from __future__ import annotations

import math

import pytest
import trio

from ff.resp import Client, errors

pytestmark = pytest.mark.compat

LIBRARY = """#!lua name=ffresp_test
redis.register_function('ffresp_pair', function(keys, args)
  redis.call('SET', keys[1], args[1])
  return {keys[1], args[1], #keys, #args}
end)
redis.register_function{
  function_name = 'ffresp_get',
  callback = function(keys, args) return redis.call('GET', keys[1]) end,
  flags = {'no-writes'},
}
"""


async def test_pipeline_returns_errors_in_place(client: Client) -> None:
    await client.execute("SET", "str", "v")
    pipe = client.pipeline()
    assert pipe.execute_command("INCR", "n") is pipe  # chainable
    pipe.execute_command("LPUSH", "str", "x").execute_command("INCR", "n")
    pipe.execute_command("GET", "str")
    assert len(pipe) == 4
    results = await pipe.run()
    assert results[0] == 1 and results[2] == 2 and results[3] == b"v"
    assert isinstance(results[1], errors.ResponseError) and results[1].prefix == "WRONGTYPE"
    assert len(pipe) == 0 and await pipe.run() == []  # run() empties the pipeline


async def test_pipeline_raise_on_error(client: Client) -> None:
    await client.execute("SET", "str", "v")
    pipe = client.pipeline().execute_command("INCR", "n").execute_command("LPUSH", "str", "x")
    with pytest.raises(errors.ResponseError):
        await pipe.run(raise_on_error=True)
    assert await client.execute("GET", "n") == b"1"  # the rest still ran


async def test_single_command_pipeline(client: Client) -> None:
    assert await client.pipeline().execute_command("ECHO", "x").run() == [b"x"]


async def test_transaction(client: Client) -> None:
    await client.execute("SET", "str", "v")
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("INCR", "n").execute_command("LPUSH", "str", "x")
    pipe.execute_command("INCRBY", "n", 10)
    results = await pipe.run()
    assert results[0] == 1 and results[2] == 11
    assert isinstance(results[1], errors.ResponseError) and results[1].prefix == "WRONGTYPE"


async def test_transaction_aborted_at_queue_time(client: Client) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.execute_command("INCR", "n").execute_command("GET").execute_command("INCR", "n")
    results = await pipe.run()
    assert [r.prefix for r in results] == ["EXECABORT", "ERR", "EXECABORT"]
    assert await client.execute("GET", "n") is None  # nothing ran
    with pytest.raises(errors.ResponseError):
        await pipe.execute_command("GET").run(raise_on_error=True)


async def test_transactions_are_atomic_under_concurrency(client: Client) -> None:
    async def bump() -> None:
        for _ in range(20):
            pipe = client.pipeline(transaction=True)
            pipe.execute_command("INCR", "a").execute_command("INCR", "b")
            a, b = await pipe.run()
            assert a == b

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(bump)
    assert await client.execute("GET", "a") == b"200"


async def test_connection_state_commands_are_refused(client: Client) -> None:
    for args in [("MULTI",), ("exec",), (b"WATCH", "k"), ("SELECT", 1), ("BLPOP", "q", 1),
                 ("SUBSCRIBE", "c")]:
        with pytest.raises(ValueError, match="dedicated"):
            await client.execute(*args)
        with pytest.raises(ValueError):
            client.pipeline().execute_command(*args)
    assert await client.execute("PING") == b"PONG"


async def test_scan_iter(client: Client) -> None:
    pipe = client.pipeline()
    for i in range(5000):
        pipe.execute_command("SET", f"scan:{i}", i)
    pipe.execute_command("SADD", "other:set", "m")
    await pipe.run(raise_on_error=True)
    keys = {key async for key in client.scan_iter(match="scan:*", count=500)}
    assert keys == {f"scan:{i}".encode() for i in range(5000)}
    everything = [key async for key in client.scan_iter()]
    assert set(everything) == keys | {b"other:set"}
    sets = [key async for key in client.scan_iter(type="set")]
    assert sets == [b"other:set"]


async def test_sscan_iter(client: Client) -> None:
    members = [f"m{i}" for i in range(3000)]
    await client.execute("SADD", "big:set", *members)
    seen = {m async for m in client.sscan_iter("big:set", count=200)}
    assert seen == {m.encode() for m in members}
    few = {m async for m in client.sscan_iter("big:set", match="m1??")}
    assert few == {f"m{i}".encode() for i in range(100, 200)}


async def test_functions(client: Client) -> None:
    assert await client.function_load(LIBRARY) == "ffresp_test"
    assert await client.function_load(LIBRARY, replace=True) == "ffresp_test"
    with pytest.raises(errors.ResponseError):
        await client.function_load(LIBRARY, replace=False)  # already exists
    assert await client.fcall("ffresp_pair", ["fk"], ["v1", 2]) == [b"fk", b"v1", 1, 2]
    assert await client.fcall_ro("ffresp_get", ["fk"], []) == b"v1"
    with pytest.raises(errors.ResponseError):
        await client.fcall_ro("ffresp_pair", ["fk"], ["v"])  # not flagged no-writes
    pipe = client.pipeline().fcall("ffresp_pair", ["pk"], ["pv"]).fcall("nope", [], [])
    ok, missing = await pipe.run()
    assert ok == [b"pk", b"pv", 1, 1] and isinstance(missing, errors.ResponseError)


async def test_pubsub_receives_messages(client: Client) -> None:
    async with client.subscribe("ch:a", b"ch:b") as sub:
        for i in range(10):
            receivers = await client.execute("PUBLISH", "ch:a" if i % 2 else "ch:b", f"m{i}")
            assert receivers == 1
        received = []
        with trio.fail_after(5):
            async for channel, message in sub:
                received.append((channel, message))
                if len(received) == 10:
                    break
    assert received == [(b"ch:a" if i % 2 else b"ch:b", f"m{i}".encode()) for i in range(10)]
    assert await client.execute("PUBSUB", "NUMSUB", "ch:a") == [b"ch:a", 0]


async def test_blocking_command_on_dedicated_connection_does_not_delay_others(
    client: Client,
) -> None:
    worst = 0.0
    async with client.dedicated() as conn:
        async with trio.open_nursery() as nursery:
            start = trio.current_time()
            blpop_result: list[object] = []

            async def blpop() -> None:
                blpop_result.append(await conn.execute("BLPOP", "empty:q", 1, timeout=5))

            nursery.start_soon(blpop)
            await trio.sleep(0.05)
            for i in range(200):
                t0 = trio.current_time()
                assert await client.execute("ECHO", str(i)) == str(i).encode()
                worst = max(worst, trio.current_time() - t0)
        assert blpop_result == [None]
        assert trio.current_time() - start >= 0.95
    assert worst < 0.25


async def test_dedicated_blocking_pop_gets_pushed_value(client: Client) -> None:
    async with client.dedicated() as conn, trio.open_nursery() as nursery:
        got: list[object] = []

        async def pop() -> None:
            got.append(await conn.execute("BLMPOP", 0, 1, "jobs", "LEFT", timeout=math.inf))

        nursery.start_soon(pop)
        await trio.sleep(0.1)
        await client.execute("RPUSH", "jobs", "j1")
    assert got == [[b"jobs", [b"j1"]]]


async def test_dedicated_command_timeout(client: Client) -> None:
    async with client.dedicated() as conn:
        with pytest.raises(errors.TimeoutError):
            await conn.execute("BLPOP", "never", 2, timeout=0.2)
        with pytest.raises(errors.ConnectionError):  # broken after the timeout
            await conn.execute("PING")


async def test_usage_without_async_with(server_url: str) -> None:
    client = Client.from_url(server_url)
    assert await client.execute("PING") == b"PONG"
    results = await client.pipeline().execute_command("ECHO", "a").run()
    assert results == [b"a"]
    await client.aclose()
    with pytest.raises(errors.ClientClosedError) as info:
        await client.execute("PING")
    assert not info.value.retryable
    with pytest.raises(errors.ClientClosedError):
        async with client.dedicated():
            pass


async def test_body_exceptions_are_not_wrapped(server_url: str) -> None:
    with pytest.raises(errors.ResponseError):
        async with Client.from_url(server_url) as client:
            await client.execute("SET", "s", "v")
            await client.execute("LPUSH", "s", "v")


async def test_command_timeout_replaces_the_connection(server_url: str) -> None:
    async with Client.from_url(server_url, pool_size=1) as client:
        first_id = await client.execute("CLIENT", "ID")
        start = trio.current_time()
        with pytest.raises(errors.TimeoutError) as info:
            # A Lua busy loop keeps the server silent for longer than the timeout.
            await client.execute(
                "EVAL", "local i = 0 while i < 3e7 do i = i + 1 end return i", 0, timeout=0.1
            )
        assert info.value.retryable
        assert trio.current_time() - start < 0.3  # the short timeout, not the default 10 s
        with trio.fail_after(10):
            while True:
                try:
                    new_id = await client.execute("CLIENT", "ID")
                    break
                except errors.ConnectionError:
                    await trio.sleep(0.05)
        assert new_id != first_id


async def test_exhausted_timeout_fails_only_that_call(server_url: str) -> None:
    async with Client.from_url(server_url, pool_size=1) as client:
        first_id = await client.execute("CLIENT", "ID")
        for budget in (0, -1.5):
            with pytest.raises(errors.TimeoutError):
                await client.execute("PING", timeout=budget)
        assert await client.execute("CLIENT", "ID") == first_id


async def test_first_caller_cancelled_while_the_pool_starts(server_url: str) -> None:
    client = Client.from_url(server_url)  # no `async with`: the start has to wait
    with trio.move_on_after(0):
        await client.execute("PING")
    with trio.fail_after(5):
        assert await client.execute("PING") == b"PONG"
    await client.aclose()
