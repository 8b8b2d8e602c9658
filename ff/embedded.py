"""A private valkey-server (or redis-server) child process for the zero-config setup.

`EmbeddedServer` knows nothing about FlowFabric: it starts a server, waits for PING and
stops it (the test fixtures and benchmarks use it as it is). `embedded_deployment` is
what `ff serve` and `Server.running` use with no Valkey address configured: the server
plus the files an embedded deployment keeps beside its data (the URL workers read, the
HMAC secret).
"""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import trio

from ff.config import ServerConfig, validate_secret

SERVER_BINARIES = ("valkey-server", "redis-server")

INSTALL_HINT = (
    "neither valkey-server nor redis-server is on PATH. On Debian 12: enable the "
    "bookworm-backports suite and run `apt-get install -t bookworm-backports valkey-server` "
    "(or `apt-get install redis-server` for Redis 7.0)"
)
SECRET_FILE = "hmac_secret"
URL_FILE = "valkey.url"  # read by `ff worker` started in the same directory


class EmbeddedServerError(RuntimeError):
    """The child server could not be found, started or reached."""


def find_server_binary(preferred: str | None = None) -> str:
    """Path of the server binary to run: `preferred` if given, else Valkey, else Redis."""
    names = (preferred,) if preferred else SERVER_BINARIES
    for name in names:
        path = shutil.which(name) if name else None
        if path:
            return path
    if preferred:
        raise EmbeddedServerError(f"{preferred} is not on PATH")
    raise EmbeddedServerError(INSTALL_HINT)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedServer:
    """One child server process bound to 127.0.0.1 with its data under `data_dir`.

    `start()` and `stop()` are idempotent; `kill()` simulates a crash (SIGKILL) and
    `start()` afterwards brings the same data back from the append-only file.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        port: int | None = None,
        binary: str | None = None,
        password: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_loopback_port()
        self.binary = find_server_binary(binary)
        self.password = password
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def flavour(self) -> str:
        return "redis" if "redis" in Path(self.binary).name else "valkey"

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "server.log"),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        return args + list(self.extra_args)

    async def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        with trio.move_on_after(timeout):
            while True:
                if self.process.poll() is not None:
                    raise EmbeddedServerError(self._exit_message())
                if await self._answers_ping():
                    return
                await trio.sleep(0.02)
        await self.stop()
        raise EmbeddedServerError(f"{self.binary} did not answer PING within {timeout}s")

    def _exit_message(self) -> str:
        assert self.process is not None
        err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
        log = self.data_dir / "server.log"
        tail = log.read_text(errors="replace").splitlines()[-5:] if log.exists() else []
        detail = (err.strip() or "\n".join(tail)).strip()
        return f"{self.binary} exited with code {self.process.returncode}: {detail}"

    async def _answers_ping(self) -> bool:
        """Raw RESP2 PING over a fresh socket: the embedded server must not need our client."""
        try:
            with trio.fail_after(1):
                stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                async with stream:
                    request = b"PING\r\n"
                    if self.password:
                        pw = self.password.encode()
                        request = b"AUTH %s\r\n" % pw + request
                    await stream.send_all(request)
                    reply = b""
                    while b"PONG" not in reply and b"-" not in reply[:1]:
                        chunk = await stream.receive_some(256)
                        if not chunk:
                            return False
                        reply += chunk
                    return b"PONG" in reply
        except (OSError, trio.TooSlowError, trio.BrokenResourceError):
            return False

    def kill(self) -> None:
        """Crash the server (SIGKILL), as a power cut would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited after `timeout` seconds."""
        process = self.process
        if process is None:
            return
        with trio.CancelScope(shield=True):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(timeout):
                    while process.poll() is None:
                        await trio.sleep(0.02)
                if process.poll() is None:
                    process.kill()
                    process.wait()
            if process.stderr:
                process.stderr.close()
        self.process = None


@asynccontextmanager
async def embedded_server(
    data_dir: Path | str, **kwargs: object
) -> AsyncIterator[EmbeddedServer]:
    """Run a private server for the duration of the block (stopped also on cancellation)."""
    server = EmbeddedServer(data_dir, **kwargs)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        await server.stop()



def load_or_create_secret(data_dir: Path) -> str:
    """The embedded deployment's HMAC secret: generated once, kept beside the data."""
    path = data_dir / SECRET_FILE
    if path.exists():
        return validate_secret(path.read_text().strip())
    secret = secrets.token_hex(32)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return secret


@asynccontextmanager
async def embedded_deployment(
    config: ServerConfig,
) -> AsyncIterator[tuple[ServerConfig, EmbeddedServer]]:
    """A private server under `config.data_dir` for a config with no Valkey address;
    yields the config completed with its URL and HMAC secret, and the server."""
    data_dir = Path(config.data_dir)
    async with embedded_server(data_dir / "valkey") as server:
        (data_dir / URL_FILE).write_text(server.url + "\n")
        secret = config.waitpoint_hmac_secret or load_or_create_secret(data_dir)
        yield msgspec.structs.replace(
            config, valkey_url=server.url, waitpoint_hmac_secret=secret), server
