"""`ff serve`: boot a Server, serve the HTTP API on it, shut down in order on a signal.

    config = load_config(flags)          # environment, then command-line flags on top
    exit_code = run(config)              # blocks until SIGINT/SIGTERM

What lives here: turning flags + environment into a `ServerConfig`, the serve task and the
exit-code policy. With no Valkey address the Server starts its embedded valkey-server under
the data directory (and says where); with an external one the HMAC secret is required.

Shutdown on the first SIGINT or SIGTERM, in this order: refuse new stream reads and tails
(503), stop accepting HTTP connections (streamed answers such as SSE end at once), let
in-flight requests finish (up to `shutdown_grace` seconds), stop the scanners, close the
Valkey client, stop the embedded valkey-server. A second signal cancels what is left of the
grace period (the embedded server is still stopped).

A startup failure the operator must fix (bad configuration, no server binary, Valkey
unreachable, port in use) is one line on stderr and exit code 1, no traceback.

What must not live here: route handlers (`ff/http/routes/`), argument parsing for other
subcommands (`ff/cli.py`), engine logic.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec
import trio

from ff.config import ConfigError, ServerConfig, parse_listen_addr
from ff.core.errors import FFError
from ff.embedded import EmbeddedServerError
from ff.http import serve_http
from ff.http.routes import build_app
from ff.resp.errors import RespError
from ff.server import Server

__all__ = ["ServeOptions", "load_config", "redact_url", "run", "serve", "startup_failure"]

log = logging.getLogger("ff.serve")

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DEFAULT_SHUTDOWN_GRACE_S = 10.0

# Failures that need the operator, not a developer: reported as one line, exit code 1.
_OPERATOR_ERRORS = (ConfigError, EmbeddedServerError, RespError, FFError, OSError)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """The `ff serve` flags; None means "as the environment says"."""

    listen: str | None = None
    lanes: str | None = None
    valkey_url: str | None = None
    data_dir: str | None = None
    api_token: str | None = None
    allow_public_without_token: bool = False


def load_config(
    options: ServeOptions, env: Mapping[str, str] | None = None
) -> ServerConfig:
    """`ServerConfig.from_env(env)` with the flags that were given on top (flags win)."""
    config = ServerConfig.from_env(env)
    changes: dict[str, object] = {}
    if options.listen is not None:
        try:
            changes["listen_host"], changes["listen_port"] = parse_listen_addr(options.listen)
        except ConfigError:
            raise ConfigError(f"--listen: expected host:port, got {options.listen!r}") from None
    if options.lanes is not None:
        lanes = tuple(x.strip() for x in options.lanes.split(",") if x.strip())
        if not lanes:
            raise ConfigError("--lanes: at least one lane is required")
        changes["lanes"] = lanes
    if options.valkey_url is not None:
        changes["valkey_url"] = options.valkey_url.strip() or None
    if options.data_dir is not None:
        changes["data_dir"] = options.data_dir
    if options.api_token is not None:
        changes["api_token"] = options.api_token or None
    if options.allow_public_without_token:
        changes["allow_public_without_token"] = True
    return msgspec.structs.replace(config, **changes) if changes else config


def redact_url(url: str) -> str:
    """`url` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


async def _watch_signals(
    signals: AsyncIterator[int], stop: trio.Event, scope: trio.CancelScope
) -> None:
    async for signum in signals:
        name = signal.Signals(signum).name
        if not stop.is_set():
            log.info("shutdown requested", extra={"signal": name})
            stop.set()
        else:
            log.warning("second signal: cutting the shutdown grace short", extra={"signal": name})
            scope.cancel()
            return


async def serve(
    config: ServerConfig,
    *,
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_S,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the server until SIGINT/SIGTERM, then shut down in order and return.

    `task_status.started(port)` once the HTTP API accepts connections.
    """
    stop = trio.Event()
    with trio.open_signal_receiver(*SHUTDOWN_SIGNALS) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, signals, stop, nursery.cancel_scope)
            await _serve_until(config, stop, shutdown_grace, task_status)
            nursery.cancel_scope.cancel()
    log.info("server stopped")


async def _serve_until(
    config: ServerConfig,
    stop: trio.Event,
    shutdown_grace: float,
    task_status: trio.TaskStatus[int],
) -> None:
    config.check_listen_policy()
    if config.valkey_url is None:
        log.info("starting embedded valkey",
                 extra={"data_dir": str(Path(config.data_dir).resolve())})
    async with Server.running(config) as server:
        if server.embedded is not None:
            log.info("embedded valkey running", extra={
                "url": server.embedded.url, "data_dir": str(server.embedded.data_dir),
                "binary": server.embedded.binary,
            })
        else:
            url = redact_url(server.config.valkey_url or "")
            log.info("connected to valkey", extra={"url": url})
        app = build_app(server)
        if not server.config.api_token:
            log.warning("FF_API_TOKEN is not set: NO AUTHENTICATION; the API (results "
                        "included) is open to anyone who can reach %s", config.bind_host)
        if stop.is_set():
            return
        async with trio.open_nursery() as http:
            http.start_soon(_refuse_stream_ops_on, stop, server)
            port = await http.start(partial(
                serve_http, app, config.bind_host, config.listen_port,
                shutdown=stop, shutdown_grace=shutdown_grace,
            ))
            log.info("HTTP API listening", extra={
                "address": f"{config.bind_host}:{port}",
                "lanes": ",".join(server.config.lanes),
                "partitions": server.partition_config.as_fields(),
            })
            task_status.started(port)
        log.info("HTTP API stopped; stopping the engine")


async def _refuse_stream_ops_on(stop: trio.Event, server: Server) -> None:
    """Shutdown closes the stream-ops gate first: new reads and tails get 503 while the
    HTTP requests in progress drain."""
    await stop.wait()
    server.stream_ops.closed = True


def startup_failure(exc: BaseException) -> str | None:
    """The one-line message for a failure the operator must fix, else None.

    Looks through exception groups: one made only of such failures reports the first.
    """
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(_OPERATOR_ERRORS)
        if matched is None or rest is not None:
            return None
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        return startup_failure(first)
    if isinstance(exc, RespError):
        return f"cannot use Valkey: {exc}"
    if isinstance(exc, _OPERATOR_ERRORS):
        return str(exc) or type(exc).__name__
    return None


def run(config: ServerConfig, *, shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE_S) -> int:
    """`serve(config)` in a fresh trio run: 0 after a clean shutdown, 1 when startup failed."""
    try:
        trio.run(partial(serve, config, shutdown_grace=shutdown_grace))
    except Exception as exc:
        message = startup_failure(exc)
        if message is None:
            log.exception("ff serve failed")
            return 1
        print(f"ff serve: error: {' '.join(message.split())}", file=sys.stderr)
        return 1
    return 0
