"""Shared fixtures: one real server per test session, a clean logical database per test.

`FF_TEST_SERVER` picks the binary (`valkey-server` by default, `redis-server` for the
compatibility run). Tests get `server_url` (a flushed database of their own); fault tests
take the `fault_server` fixture, a private server they may kill and restart.

`FF_TEST_CLUSTER=1` (with `-m cluster`) gives `server_url` a 3-primary cluster instead,
started once per session by `tools/cluster.sh` on free loopback ports and flushed per test.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
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
CLUSTER_SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "cluster.sh"


def cluster_mode() -> bool:
    return os.environ.get("FF_TEST_CLUSTER", "") == "1"


def _free_port_range(count: int) -> int:
    """A base port with `count` free ports above it (and their cluster bus ports)."""
    for _ in range(100):
        base = random.randrange(20000, 50000 - count)
        ports = [*range(base, base + count), *range(base + 10000, base + 10000 + count)]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range for a test cluster")


def _pid_alive(pid: int) -> bool:
    """Running (a zombie, killed and not yet reaped, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class LocalCluster:
    """A cluster started by tools/cluster.sh; stopped (its own pids only) at session end."""

    def __init__(self, directory: Path, *, replicas: bool = False) -> None:
        self.directory = directory
        self.replicas = replicas
        self.base = _free_port_range(6 if replicas else 3)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.base}"

    def _run(self, *args: str) -> None:
        subprocess.run(["bash", str(CLUSTER_SCRIPT), *args, "--dir", str(self.directory)],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        """Started, and with replicas, each replica's first sync done."""
        extra = ["--replicas"] if self.replicas else []
        self._run("start", "--port", str(self.base), *extra)
        deadline = time.monotonic() + 30
        for port in range(self.base + 3, self.base + 6) if self.replicas else ():
            while b"master_link_status:up" not in _raw_command(port, "INFO", "replication"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica on port {port} did not sync")
                time.sleep(0.05)

    def stop(self) -> None:
        self._run("stop")

    def primary_ports(self) -> list[int]:
        ports = []
        for port in range(self.base, self.base + (6 if self.replicas else 3)):
            if b"role:master" in _raw_command(port, "INFO", "replication"):
                ports.append(port)
        return ports

    def pid(self, port: int) -> int:
        """The node's pid as the start script recorded it."""
        return int((self.directory / str(port) / "pid").read_text())

    def kill(self, port: int) -> None:
        """SIGKILL one node and wait for it to be gone."""
        pid = self.pid(port)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def flush(self) -> None:
        for port in self.primary_ports():
            assert _raw_command(port, "FLUSHALL").startswith(b"+OK")


@pytest.fixture(scope="session")
def test_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def server_url(request: pytest.FixtureRequest) -> str:
    """URL of a freshly flushed database: a logical database of the session server, or
    the whole test cluster in cluster mode."""
    if cluster_mode():
        cluster: LocalCluster = request.getfixturevalue("test_cluster")
        cluster.flush()
        return cluster.url
    return _single_server_url(request.getfixturevalue("embedded"))


def _single_server_url(embedded: EmbeddedServer) -> str:
    """A freshly flushed logical database (rotating, so leftovers never collide)."""
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
