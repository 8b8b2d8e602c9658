"""Every RESP3 reply type, produced by a real server, decoded to the documented type."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from ff.embedded import EmbeddedServer
from ff.resp import Client, errors

pytestmark = pytest.mark.compat


@pytest.fixture
async def debug_client(debug_server: EmbeddedServer) -> AsyncIterator[Client]:
    async with Client.from_url(debug_server.url, pool_size=2) as client:
        yield client


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("string", b"Hello World"),
        ("integer", 12345),
        ("double", 3.141),
        ("bignum", 1234567999999999999999999999999999999),
        ("null", None),
        ("array", [0, 1, 2]),
        ("set", [0, 1, 2]),  # sets decode to lists
        ("map", {0: False, 1: True, 2: False}),
        ("true", True),
        ("false", False),
        ("verbatim", b"This is a verbatim\nstring"),
        ("attrib", b"Some real reply following the attribute"),  # attribute dropped
        ("push", b"Some real reply following the push reply"),  # push not taken as reply
    ],
)
async def test_debug_protocol(debug_client: Client, kind: str, expected: object) -> None:
    reply = await debug_client.execute("DEBUG", "PROTOCOL", kind)
    assert reply == expected
    assert type(reply) is type(expected)
    # The connection is still in step afterwards (on both pooled connections).
    for i in range(4):
        token = f"after-{kind}-{i}"
        assert await debug_client.execute("ECHO", token) == token.encode()


async def test_everyday_commands(client: Client) -> None:
    assert await client.execute("SET", "s", "v") == b"OK"
    assert await client.execute("GET", "missing") is None
    assert await client.execute("EXISTS", "s") == 1
    await client.execute("ZADD", "z", 1.5, "m")
    score = await client.execute("ZSCORE", "z", "m")
    assert score == 1.5 and type(score) is float
    await client.execute("SADD", "set", "a", "b")
    members = await client.execute("SMEMBERS", "set")
    assert type(members) is list and sorted(members) == [b"a", b"b"]
    await client.execute("HSET", "h", "f1", "1", "f2", "2")
    assert await client.execute("HGETALL", "h") == {b"f1": b"1", b"f2": b"2"}
    info = await client.execute("CLIENT", "INFO")  # a verbatim string
    assert type(info) is bytes and info.startswith(b"id=")
    assert await client.execute("SET", "s", "x", "NX") is None


async def test_argument_encoding(client: Client) -> None:
    cases = [
        (7, b"7"), (-3, b"-3"), (10**20, b"100000000000000000000"), (1.5, b"1.5"),
        (0.1, b"0.1"), ("é", "é".encode()), (b"\x00\xff", b"\x00\xff"),
    ]
    for value, wire in cases:
        await client.execute("SET", "k", value)
        assert await client.execute("GET", "k") == wire
    with pytest.raises(TypeError):
        await client.execute("SET", "k", True)
    with pytest.raises(TypeError):
        await client.execute("SET", "k", None)
    with pytest.raises(ValueError):
        await client.execute()


async def test_error_reply_is_raised_with_its_prefix(client: Client) -> None:
    await client.execute("SET", "s", "v")
    with pytest.raises(errors.ResponseError) as info:
        await client.execute("LPUSH", "s", "x")
    assert info.value.prefix == "WRONGTYPE" and not info.value.retryable
    with pytest.raises(errors.ResponseError) as info:
        await client.execute("NOSUCHCOMMAND")
    assert info.value.prefix == "ERR"


async def test_sixteen_mib_values_round_trip(client: Client) -> None:
    big = os.urandom(16 * 1024 * 1024)  # random bytes: many false "special frame" alarms
    await client.execute("SET", "big", big)
    assert await client.execute("GET", "big") == big
    assert await client.execute("STRLEN", "big") == len(big)
    results = await client.pipeline().execute_command("GET", "big").execute_command(
        "ECHO", "after").run()
    assert results == [big, b"after"]


async def test_push_frames_on_a_connection_are_dropped(client: Client) -> None:
    """CLIENT TRACKING invalidations (push frames) never displace a reply."""
    async with client.dedicated() as conn:
        assert await conn.execute("CLIENT", "TRACKING", "ON") == b"OK"
        for i in range(20):
            await conn.execute("GET", f"tracked{i}")
        for i in range(20):  # each write invalidates a key the dedicated conn read
            await client.execute("SET", f"tracked{i}", i)
        for i in range(20):
            assert await conn.execute("ECHO", f"e{i}") == f"e{i}".encode()
            assert await conn.execute("GET", f"tracked{i}") == str(i).encode()
