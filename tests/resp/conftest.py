"""Fixtures for the RESP client tests: a client on a clean database, and servers with
non-default settings (DEBUG enabled, a password, a unix socket, TLS) for the tests that
need them. Every server honours FF_TEST_SERVER like the shared fixtures do."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from ff.embedded import EmbeddedServer, free_loopback_port
from ff.resp import Client

PASSWORD = "s3cret"


@pytest.fixture
async def client(server_url: str) -> AsyncIterator[Client]:
    async with Client.from_url(server_url, client_name="ff-resp-test") as c:
        yield c


def _session_server(
    directory: Path, *, password: str | None = None, extra_args: tuple[str, ...] = ()
) -> Iterator[EmbeddedServer]:
    server = EmbeddedServer(
        directory,
        binary=os.environ.get("FF_TEST_SERVER") or None,
        password=password,
        extra_args=extra_args,
    )
    trio.run(server.start)
    yield server
    trio.run(server.stop)


@pytest.fixture(scope="session")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A server that accepts DEBUG (for DEBUG PROTOCOL <type>) from local clients."""
    yield from _session_server(
        tmp_path_factory.mktemp("debug"), extra_args=("--enable-debug-command", "local")
    )


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    yield from _session_server(tmp_path_factory.mktemp("auth"), password=PASSWORD)


@pytest.fixture(scope="session")
def unix_server() -> Iterator[tuple[EmbeddedServer, str]]:
    """A server also listening on a unix socket (short path: sun_path is ~108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="ffresp", dir="/tmp") as directory:
        socket_path = os.path.join(directory, "s.sock")
        servers = _session_server(
            Path(directory) / "data",
            extra_args=("--unixsocket", socket_path, "--unixsocketperm", "700"),
        )
        yield next(servers), socket_path
        next(servers, None)


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A server with a TLS port too: (TLS port, path of the self-signed certificate)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    tls_port = free_loopback_port()
    servers = _session_server(
        directory / "data",
        extra_args=("--tls-port", str(tls_port), "--tls-cert-file", str(cert),
                    "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
                    "--tls-auth-clients", "no"),
    )
    next(servers)
    yield tls_port, cert
    next(servers, None)
