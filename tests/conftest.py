"""Shared fixtures: one real server per test session, a clean logical database per test.

`FF_TEST_SERVER` picks the binary (`valkey-server` by default, `redis-server` for the
compatibility run). Tests get `server_url` (a flushed database of their own); fault tests
take the `fault_server` fixture, a private server they may kill and restart.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from ff.embedded import EmbeddedServer

DATABASES = 16


def _raw_command(port: int, *args: str) -> bytes:
    """One RESP2 command over a plain socket, for fixture housekeeping."""
    frame = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n{a}\r\n".encode() for a in args
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(frame)
        return sock.recv(4096)


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(
        tmp_path_factory.mktemp("server"), binary=os.environ.get("FF_TEST_SERVER") or None
    )
    trio.run(server.start)
    yield server
    trio.run(server.stop)


_next_db = iter(range(10**9))


@pytest.fixture
def server_url(embedded: EmbeddedServer) -> str:
    """URL of a freshly flushed logical database (rotating, so leftovers never collide)."""
    db = next(_next_db) % DATABASES
    if embedded.process is None:
        trio.run(embedded.start)
    reply = _raw_command(embedded.port, "SELECT", str(db))
    assert reply.startswith(b"+OK"), reply
    _flush(embedded.port, db)
    return f"redis://127.0.0.1:{embedded.port}/{db}"


def _flush(port: int, db: int) -> None:
    frame = b"".join(
        f"*{len(c)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in c)
        for c in (("SELECT", str(db)), ("FLUSHDB",))
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(frame)
        reply = b""
        while reply.count(b"\r\n") < 2:
            reply += sock.recv(4096)


@pytest.fixture
async def fault_server(tmp_path: Path) -> EmbeddedServer:
    """A private server this test may kill (`.kill()`) and bring back (`await .start()`)."""
    server = EmbeddedServer(tmp_path / "fault", binary=os.environ.get("FF_TEST_SERVER") or None)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def server_flavour(embedded: EmbeddedServer) -> str:
    return embedded.flavour
