"""URL parsing, and connecting over each kind of address."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
import trio

from ff.embedded import EmbeddedServer
from ff.resp import Client, ConnectionParams, errors, parse_url


def test_tcp_url_with_credentials_and_db() -> None:
    params = parse_url("redis://al%40ice:p%3Ass@example.com:6380/3")
    assert params == ConnectionParams(
        host="example.com", port=6380, db=3, username="al@ice", password="p:ss"
    )
    assert params.address == "example.com:6380"


def test_defaults_and_password_only() -> None:
    assert parse_url("redis://localhost") == ConnectionParams(host="localhost")
    params = parse_url("redis://:pw@127.0.0.1/")
    assert (params.username, params.password, params.db) == (None, "pw", 0)


def test_tls_scheme_and_query_db() -> None:
    params = parse_url("rediss://cache.internal?db=5", client_name="w1", connect_timeout=2.0)
    assert params.tls and params.db == 5 and params.port == 6379
    assert (params.client_name, params.connect_timeout) == ("w1", 2.0)


def test_unix_url() -> None:
    params = parse_url("unix:///run/valkey/valkey.sock?db=2")
    assert (params.unix_path, params.db, params.address) == (
        "/run/valkey/valkey.sock", 2, "unix:/run/valkey/valkey.sock"
    )
    assert parse_url("unix:///tmp/x.sock").db == 0


def test_replica_acks_on_a_cluster_url() -> None:
    params = parse_url("redis+cluster://n1:7000?replica_acks=1&replica_ack_timeout_ms=250")
    assert (params.cluster, params.replica_acks, params.replica_ack_timeout_ms) == (True, 1, 250)
    assert parse_url("redis+cluster://n1:7000?replica_acks=2").replica_ack_timeout_ms == 1000
    for url in ("redis://host?replica_acks=1", "unix:///tmp/v.sock?replica_acks=1"):
        with pytest.raises(ValueError, match="cluster URL"):
            Client.from_url(url)
    with pytest.raises(ValueError, match="below the command timeout"):
        Client.from_url("redis+cluster://n1:7000?replica_acks=1&replica_ack_timeout_ms=10000")


@pytest.mark.parametrize(
    "url",
    ["redis+cluster://host?replica_acks=-1", "redis+cluster://host?replica_acks=x",
     "redis+cluster://host?replica_ack_timeout_ms=0", "http://host", "redis://host/notanumber",
     "redis://host/1?db=2", "redis://host:99999",
     "unix://", "redis://host/-1"],
)
def test_malformed_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_url(url)


def test_errors_never_echo_the_password() -> None:
    with pytest.raises(ValueError) as info:
        parse_url("redis://user:hunter2@host/x")
    assert "hunter2" not in str(info.value)


@pytest.mark.compat
async def test_unix_socket_connection(unix_server: tuple[EmbeddedServer, str]) -> None:
    _, socket_path = unix_server
    async with Client.from_url(f"unix://{socket_path}?db=4") as client:
        await client.execute("SET", "via", "unix")
        info = await client.execute("CLIENT", "INFO")
        assert b"db=4" in info
        assert await client.execute("GET", "via") == b"unix"


@pytest.mark.compat
async def test_client_name_and_db_are_applied(embedded: EmbeddedServer) -> None:
    url = f"redis://127.0.0.1:{embedded.port}/7"
    async with Client.from_url(url, client_name="ff-named") as client:
        info = await client.execute("CLIENT", "INFO")
        assert b"name=ff-named" in info and b"db=7" in info and b"resp=3" in info


@pytest.mark.compat
async def test_password_in_url(auth_server: EmbeddedServer) -> None:
    url = f"redis://default:{auth_server.password}@127.0.0.1:{auth_server.port}/1"
    async with Client.from_url(url) as c:
        assert await c.execute("PING") == b"PONG"


@pytest.mark.compat
async def test_tls_connection(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    context = ssl.create_default_context(cafile=str(cert))
    url = f"rediss://127.0.0.1:{port}/2"
    async with Client.from_url(url, ssl_context=context) as client:
        value = os.urandom(1 << 20)
        await client.execute("SET", "tls", value)

        async def check(i: int) -> None:
            assert await client.execute("ECHO", str(i)) == str(i).encode()

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(check, i)
        assert await client.execute("GET", "tls") == value
        async with client.dedicated() as conn:
            assert await conn.execute("CLIENT", "INFO") != b""


@pytest.mark.compat
async def test_tls_with_an_untrusted_certificate(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    async with Client.from_url(f"rediss://127.0.0.1:{port}/0") as client:
        with pytest.raises(errors.ConnectionError, match="certificate"):
            await client.execute("PING")
