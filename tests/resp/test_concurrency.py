"""Many tasks multiplexed on a few connections: every reply must reach its own caller,
also when callers are cancelled at random while their commands are in flight."""

from __future__ import annotations

import random

import pytest
import trio

from ff.resp import Client

pytestmark = pytest.mark.compat

TASKS = 200
COMMANDS = 50_000


async def connection_ids(client: Client, pool_size: int) -> set[int]:
    """The server-side ids of the pool's connections (round-robin reaches all of them)."""
    ids = set()
    for _ in range(pool_size * 4):
        ids.add(await client.execute("CLIENT", "ID"))
    return ids


async def test_mixed_commands_from_many_tasks(client: Client) -> None:
    """200 tasks, 50,000 commands of different shapes, each reply checked."""
    per_task = COMMANDS // TASKS
    done = 0

    async def worker(t: int) -> None:
        nonlocal done
        rng = random.Random(t)
        counter = 0
        items = 0
        for i in range(per_task):
            token = f"{t}:{i}:{rng.random()}"
            choice = rng.randrange(6)
            if choice == 0:
                assert await client.execute("ECHO", token) == token.encode()
            elif choice == 1:
                counter += 1
                assert await client.execute("INCR", f"cnt:{t}") == counter
            elif choice == 2:
                assert await client.execute("SET", f"kv:{t}", token) == b"OK"
                assert await client.execute("GET", f"kv:{t}") == token.encode()
                done += 1
            elif choice == 3:
                items += 1
                assert await client.execute("RPUSH", f"list:{t}", token) == items
            elif choice == 4:
                assert await client.execute("HSET", f"h:{t}", "f", token) in (0, 1)
                assert await client.execute("HGETALL", f"h:{t}") == {b"f": token.encode()}
                done += 1
            else:
                pipe = client.pipeline()
                pipe.execute_command("ECHO", token).execute_command("LLEN", f"list:{t}")
                assert await pipe.run() == [token.encode(), items]
                done += 1
            done += 1
        expected = str(counter).encode() if counter else None
        assert await client.execute("GET", f"cnt:{t}") == expected

    async with trio.open_nursery() as nursery:
        for t in range(TASKS):
            nursery.start_soon(worker, t)
    assert done >= COMMANDS


async def test_cancellation_storm_keeps_replies_in_step(server_url: str) -> None:
    async with Client.from_url(server_url, pool_size=3) as client:
        before = await connection_ids(client, 3)
        rng = random.Random(1)
        completed = cancelled = 0

        async def caller(t: int) -> None:
            nonlocal completed, cancelled
            for i in range(150):
                token = f"{t}-{i}"
                with trio.move_on_after(rng.choice([0, 0.00001, 0.0002, 0.001, 1])) as scope:
                    if i % 3:
                        assert await client.execute("ECHO", token) == token.encode()
                    else:
                        pipe = client.pipeline().execute_command("ECHO", token)
                        pipe.execute_command("ECHO", token + "!")
                        assert await pipe.run() == [token.encode(), (token + "!").encode()]
                if scope.cancelled_caught:
                    cancelled += 1
                else:
                    completed += 1

        async def chaos(nursery: trio.Nursery) -> None:
            """Cancels whole callers mid-flight, on top of their random deadlines."""
            scopes = []
            for t in range(100, 140):
                scope = trio.CancelScope()
                scopes.append(scope)

                async def run(scope: trio.CancelScope = scope, t: int = t) -> None:
                    with scope:
                        await caller(t)

                nursery.start_soon(run)
            for scope in scopes:
                await trio.sleep(rng.random() * 0.01)
                scope.cancel()

        async with trio.open_nursery() as nursery:
            for t in range(100):
                nursery.start_soon(caller, t)
            nursery.start_soon(chaos, nursery)

        assert cancelled > 1000 and completed > 1000
        # Afterwards: no connection was lost (a slip would have broken one) and every
        # reply still matches its command.
        assert await connection_ids(client, 3) == before
        async with trio.open_nursery() as nursery:
            for t in range(50):
                nursery.start_soon(caller, 1000 + t)
