"""`ff`: the command-line entry point (console script `ff = "ff.cli:main"`).

    ff serve [--listen HOST:PORT] [--lanes a,b] [--valkey-url URL] [--data-dir DIR] ...
    ff worker MODULE ...        (ff.worker.cli)
    ff bench SCENARIO ...       (bench.cli, in a source checkout)
    ff admin status [--json]
    ff admin rotate-secret [--kid KID] [--server URL]
    ff signal EXECUTION_ID --name NAME [--payload JSON] [--waitpoint ID] [--server URL]

`--log-level` and `--log-format` (json | text) are accepted before or after the subcommand.

What lives here: the argument parser, the dispatcher, the log formatters every
subcommand logs through, `admin status`, `admin rotate-secret` and `signal` (the last two
talk to a running server's HTTP API: --server, else FF_SERVER_URL, else
http://127.0.0.1:9090; --api-token, else FF_API_TOKEN). `worker` and `bench` belong to their own
modules, imported when the parser is built; while such a module is not there the
subcommand still parses and says so when run. Running the server is `ff/serve.py`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import trio

import ff

__all__ = ["JsonLinesFormatter", "TextFormatter", "build_parser", "configure_logging", "main"]

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _event(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, Any]:
    """A record as ts, level, logger, msg, then its `extra=` fields, then exc."""
    seconds = int(record.created)
    event: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in record.__dict__.items():
        if key not in _RECORD_FIELDS and not key.startswith("_"):
            event[key] = value
    if record.exc_info:
        event["exc"] = formatter.formatException(record.exc_info)
    return event


class JsonLinesFormatter(logging.Formatter):
    """One JSON object per event: ts, level, logger, msg, the `extra=` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_event(self, record), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The same events for a terminal: `ts level logger: msg key=value ...`, with a
    traceback on the lines below. One line per event still, so `grep` works."""

    def format(self, record: logging.LogRecord) -> str:
        event = _event(self, record)
        exc = event.pop("exc", None)
        line = f"{event.pop('ts')} {event.pop('level'):<7} {event.pop('logger')}: " \
               f"{event.pop('msg')}"
        fields = " ".join(f"{key}={json.dumps(value, default=str, ensure_ascii=False)}"
                          if not isinstance(value, str) or " " in value or not value
                          else f"{key}={value}" for key, value in event.items())
        line = f"{line} {fields}" if fields else line
        return f"{line}\n{exc}" if exc else line


LOG_FORMATTERS: dict[str, type[logging.Formatter]] = {
    "json": JsonLinesFormatter, "text": TextFormatter}
LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(level: str | None = None, log_format: str | None = None) -> None:
    """One line per event on stderr for the whole process (replaces earlier root
    handlers): JSON objects by default, `text` for people reading a terminal. What is not
    given comes from FF_LOG_LEVEL / FF_LOG_FORMAT, else info / json."""
    level = level or os.environ.get("FF_LOG_LEVEL") or "info"
    log_format = log_format or os.environ.get("FF_LOG_FORMAT") or "json"
    if level.lower() not in LOG_LEVELS:
        raise ValueError(f"FF_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    if log_format not in LOG_FORMATTERS:
        raise ValueError(f"FF_LOG_FORMAT: expected one of {', '.join(LOG_FORMATTERS)}, "
                         f"got {log_format!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LOG_FORMATTERS[log_format]())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# -- subcommands that live elsewhere -------------------------------------------------------


def _import_optional(module: str) -> ModuleType | None:
    """`module`, or None when it (or its package) does not exist; other errors propagate."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module == exc.name or module.startswith(exc.name + ".")):
            raise
        return None


def _import_bench() -> ModuleType | None:
    """`bench.cli`; `bench/` sits beside `ff/` in a source checkout, not in the package."""
    module = _import_optional("bench.cli")
    if module is None and (_SOURCE_ROOT / "bench" / "cli.py").is_file():
        sys.path.append(str(_SOURCE_ROOT))
        module = _import_optional("bench.cli")
    return module


def _add_placeholder(subparsers: Any, name: str, module: str, what: str) -> None:
    parser = subparsers.add_parser(name, help=f"{what} (not available: {module} is missing)")
    parser.add_argument("rest", nargs=argparse.REMAINDER)


# -- admin -----------------------------------------------------------------------------------


async def _status(url: str) -> dict[str, Any]:
    from ff.api.lanes import count_executions, list_lanes
    from ff.boot import server_version
    from ff.config import cluster_from_env
    from ff.core.keys import CONFIG_PARTITIONS
    from ff.core.partitions import PartitionConfig
    from ff.resp import Client
    from ff.script.library import LIBRARY_VERSION, FunctionLibrary, text

    async with Client.from_url(url, pool_size=1, client_name="ff-admin",
                               cluster=cluster_from_env()) as client:
        info = text(await client.execute("INFO", "server"))
        raw = await client.execute("HGETALL", CONFIG_PARTITIONS)
        partitions = {text(k): int(v) for k, v in raw.items()}
        lanes = await list_lanes(client)
        loaded = await FunctionLibrary(client).loaded_version()
        counts = {}
        if partitions:
            config = PartitionConfig(**partitions)
            counts = {lane: await count_executions(client, config, lane) for lane in lanes}
    flavour, version = server_version(info)
    return {
        "ff_version": ff.__version__,
        "server": {"flavour": flavour, "version": ".".join(map(str, version))},
        "library": {"expected": LIBRARY_VERSION, "loaded": loaded},
        "partitions": partitions,
        "lanes": lanes,
        "counts": counts,
    }


def _counts_table(counts: dict[str, dict[str, int]]) -> list[str]:
    """One row per lane, one column per public state."""
    from ff.core.states import PublicState

    states = [str(s) for s in PublicState]
    width = max([len("lane"), *map(len, counts)])
    rows = ["  ".join(["lane".ljust(width), *states])]
    for lane, by_state in counts.items():
        cells = [str(by_state.get(s, 0)).rjust(len(s)) for s in states]
        rows.append("  ".join([lane.ljust(width), *cells]))
    return rows


def _admin_status(args: argparse.Namespace) -> int:
    from ff.serve import redact_url, startup_failure
    from ff.worker import default_valkey_url

    url = args.valkey_url or default_valkey_url()
    if not url:
        print("ff admin status: error: no Valkey address: pass --valkey-url, set FF_VALKEY_URL, "
              "or run where `ff serve` keeps its data (./.ff or FF_DATA_DIR)", file=sys.stderr)
        return 1
    try:
        status = trio.run(_status, url)
    except Exception as exc:
        message = startup_failure(exc)
        if message is None:
            raise
        print(f"ff admin status: error: {' '.join(message.split())}", file=sys.stderr)
        return 1
    status["valkey_url"] = redact_url(url)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    library = status["library"]
    partitions = status["partitions"]
    print(f"ff {status['ff_version']}")
    print(f"server: {status['server']['flavour']} {status['server']['version']} "
          f"at {status['valkey_url']}")
    print(f"function library: loaded {library['loaded'] or 'none'}, "
          f"this ff expects {library['expected']}")
    if partitions:
        print("partitions: " + ", ".join(f"{k}={v}" for k, v in sorted(partitions.items())))
    else:
        print("partitions: not configured (no server has booted on this Valkey)")
    print("lanes: " + (", ".join(status["lanes"]) or "none"))
    if status["counts"]:
        print("executions per lane and state:")
        for row in _counts_table(status["counts"]):
            print("  " + row)
    return 0


# -- commands over the HTTP API -------------------------------------------------------------

DEFAULT_SERVER_URL = "http://127.0.0.1:9090"


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL",
                        help=f"the ff server (FF_SERVER_URL, default {DEFAULT_SERVER_URL})")
    parser.add_argument("--api-token", metavar="TOKEN", help="bearer token (FF_API_TOKEN)")


def _run_api(name: str, args: argparse.Namespace, fn: Callable[[Any], Any]) -> int:
    """Runs `fn(api)` with an ApiClient; an HTTP error or an unreachable server is one
    `ff NAME: error: ...` line and exit code 1."""
    from ff.client import ApiClient, HttpError, HttpStatusError

    url = args.server or os.environ.get("FF_SERVER_URL") or DEFAULT_SERVER_URL
    token = args.api_token or os.environ.get("FF_API_TOKEN") or None

    async def go() -> Any:
        async with ApiClient(url, token=token) as api:
            return await fn(api)

    try:
        trio.run(go)
    except HttpStatusError as exc:
        print(f"ff {name}: error: {exc.error} (HTTP {exc.status})", file=sys.stderr)
        return 1
    except (HttpError, OSError) as exc:
        print(f"ff {name}: error: cannot reach {url}: {exc}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"ff {name}: error: {exc}", file=sys.stderr)
        return 1
    return 0


class CommandError(Exception):
    """A command's own refusal, printed as one line."""


def _rotate_secret(args: argparse.Namespace) -> int:
    """New kid and secret on every partition; the secret is generated here unless given
    on stdin (--secret-stdin), and never printed."""
    import secrets as _secrets
    import time

    kid = args.kid or f"k{int(time.time())}"
    secret = sys.stdin.readline().strip() if args.secret_stdin else _secrets.token_hex(32)

    async def rotate(api: Any) -> None:
        result = await api.rotate_waitpoint_secret(kid, secret)
        print(json.dumps({"new_kid": result.new_kid, "rotated": result.rotated,
                          "failed": result.failed}))
        if result.failed:
            raise CommandError(f"{len(result.failed)} partition(s) failed: run it again "
                               "(rotation is idempotent)")

    return _run_api("admin rotate-secret", args, rotate)


def _signal(args: argparse.Namespace) -> int:
    """Looks up the open waitpoint (or --waitpoint), reads its token and delivers."""
    import getpass

    if args.payload is not None:
        try:
            json.loads(args.payload)
        except ValueError as exc:
            print(f"ff signal: error: --payload is not JSON: {exc}", file=sys.stderr)
            return 1

    async def deliver(api: Any) -> None:
        eid = args.execution_id
        waitpoint = args.waitpoint
        if waitpoint is None:
            open_ = [w for w in await api.pending_waitpoints(eid)
                     if not w.required_signal_names or args.name in w.required_signal_names]
            if not open_:
                raise CommandError(f"{eid} has no open waitpoint waiting for {args.name!r}")
            if len(open_) > 1:
                ids = ", ".join(f"{w.waitpoint_id} ({w.waitpoint_key})" for w in open_)
                raise CommandError(f"several open waitpoints, pick one with --waitpoint: {ids}")
            waitpoint = open_[0].waitpoint_id
        token = await api.waitpoint_token(eid, waitpoint)
        if token is None:
            raise CommandError(f"waitpoint {waitpoint} is not open (consumed, expired or "
                               "unknown)")
        result = await api.signal(
            eid, waitpoint_id=waitpoint, name=args.name, token=token, payload=args.payload,
            source_type="operator", source_identity=args.source or getpass.getuser(),
            idempotency_key=args.idempotency_key, signal_category="operator")
        print(json.dumps({"signal_id": result.signal_id, "effect": result.effect,
                          "duplicate": result.duplicate, "waitpoint_id": waitpoint}))

    return _run_api("signal", args, deliver)


# -- logs ------------------------------------------------------------------------------------


def _frame_line(frame: Any) -> str:
    fields = frame.fields
    return f"{frame.id} {fields.get('frame_type', '')} {fields.get('payload', '')}"


async def _print_logs(args: argparse.Namespace) -> None:
    from ff.client import ApiClient

    api = ApiClient(args.server_url, token=args.api_token or None)
    async with api:
        attempt = args.attempt
        if attempt is None:
            attempt = (await api.get_execution(args.execution_id)).current_attempt_index
        if args.follow:
            async for frame in api.tail(args.execution_id, attempt):
                print(_frame_line(frame), flush=True)
            return
        start = "start"
        while True:
            page = await api.read_stream(args.execution_id, attempt, from_id=start, limit=1000)
            for frame in page.frames:
                print(_frame_line(frame))
            if page.count < 1000:
                return
            ms, seq = page.frames[-1].id.split("-")
            start = f"{ms}-{int(seq) + 1}"


def _logs(args: argparse.Namespace) -> int:
    from ff.client import HttpError, HttpStatusError

    try:
        trio.run(_print_logs, args)
    except (HttpError, HttpStatusError) as exc:
        print(f"ff logs: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


# -- serve -----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from ff.config import ConfigError
    from ff.serve import ServeOptions, load_config, run

    options = ServeOptions(listen=args.listen, lanes=args.lanes, valkey_url=args.valkey_url,
                           data_dir=args.data_dir, api_token=args.api_token,
                           allow_public_without_token=args.allow_public_without_token)
    try:
        config = load_config(options)
    except ConfigError as exc:
        print(f"ff serve: error: {exc}", file=sys.stderr)
        return 1
    return run(config, shutdown_grace=args.shutdown_grace)


# -- parser and dispatch ---------------------------------------------------------------------


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable[[Any], Any]]]:
    """The parser, and the function that runs each subcommand (by name)."""
    parser = argparse.ArgumentParser(
        prog="ff", description="ff: durable execution on Valkey.")
    parser.add_argument("--version", action="version", version=f"ff {ff.__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, Callable[[Any], Any]] = {}

    serve = subparsers.add_parser(
        "serve", help="run the HTTP API and the engine",
        description="Run the HTTP API, the scheduler and the scanners. Configuration comes "
                    "from FF_* environment variables; flags override them. With no Valkey "
                    "address, a private valkey-server keeps its data under the data dir.")
    serve.add_argument("--listen", metavar="HOST:PORT",
                       help="address of the HTTP API (FF_LISTEN_ADDR, default 0.0.0.0:9090 "
                            "with a token, 127.0.0.1:9090 without)")
    serve.add_argument("--lanes", metavar="A,B", help="lanes to register (FF_LANES)")
    serve.add_argument("--valkey-url", metavar="URL",
                       help="external Valkey (FF_VALKEY_URL); needs FF_WAITPOINT_HMAC_SECRET")
    serve.add_argument("--data-dir", metavar="DIR",
                       help="embedded Valkey data and secret (FF_DATA_DIR, default ./.ff)")
    serve.add_argument("--api-token", metavar="TOKEN",
                       help="require `Authorization: Bearer TOKEN` (FF_API_TOKEN)")
    serve.add_argument("--allow-public-without-token", action="store_true",
                       help="serve a non-loopback address with no token "
                            "(FF_ALLOW_PUBLIC_WITHOUT_TOKEN; refused otherwise)")
    serve.add_argument("--shutdown-grace", type=float, default=10.0, metavar="SECONDS",
                       help="how long in-flight requests may finish on shutdown (default 10)")
    commands["serve"] = _serve

    worker = _import_optional("ff.worker.cli")
    if worker is not None:
        worker.add_worker_parser(subparsers)
        commands["worker"] = worker.run_worker_command
    else:
        _add_placeholder(subparsers, "worker", "ff.worker.cli", "run a worker module")

    bench = _import_bench()
    if bench is not None:
        bench.add_bench_parser(subparsers)
        commands["bench"] = bench.run_bench_command
    else:
        _add_placeholder(subparsers, "bench", "bench.cli", "run a benchmark scenario")

    logs = subparsers.add_parser(
        "logs", help="print an attempt's output frames",
        description="Print the output frames of an execution's attempt (default: its "
                    "latest), one line each: `<frame id> <frame_type> <payload>`. With "
                    "--follow, keep printing as frames arrive until the attempt ends.")
    logs.add_argument("execution_id", metavar="EXECUTION_ID")
    logs.add_argument("--attempt", type=int, metavar="N", help="attempt index")
    logs.add_argument("--follow", "-f", action="store_true", help="follow until it ends")
    logs.add_argument("--server-url", default=os.environ.get("FF_SERVER_URL",
                                                             "http://127.0.0.1:9090"),
                      metavar="URL", help="the ff HTTP API (FF_SERVER_URL, default "
                                          "http://127.0.0.1:9090)")
    logs.add_argument("--api-token", default=os.environ.get("FF_API_TOKEN"), metavar="TOKEN",
                      help="Bearer token (FF_API_TOKEN)")
    commands["logs"] = _logs

    admin = subparsers.add_parser("admin", help="operator commands",
                                  description="Operator commands against a deployment.")
    admin_commands = admin.add_subparsers(dest="admin_command", required=True,
                                          metavar="COMMAND")
    status = admin_commands.add_parser(
        "status", help="server and library versions, partitions, lanes",
        description="Connect to Valkey (--valkey-url, else FF_VALKEY_URL, else the URL an "
                    "embedded `ff serve` wrote under ./.ff or FF_DATA_DIR) and print the "
                    "server version, the function library version, the partition counts "
                    "and the registered lanes.")
    status.add_argument("--valkey-url", metavar="URL")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(admin_run=_admin_status)
    rotate = admin_commands.add_parser(
        "rotate-secret", help="rotate the waitpoint HMAC secret on every partition",
        description="Install a new kid and secret on every partition through the server's "
                    "rotate route. Tokens of the old kid keep working for the server's "
                    "FF_WAITPOINT_HMAC_GRACE_MS (24 h by default). The secret is generated "
                    "(32 random bytes) unless --secret-stdin reads it as hex; it is never "
                    "printed. Safe to repeat.")
    rotate.add_argument("--kid", help="the new key id (default: k<unix time>)")
    rotate.add_argument("--secret-stdin", action="store_true",
                        help="read the new secret (hex) from the first line of stdin")
    _api_options(rotate)
    rotate.set_defaults(admin_run=_rotate_secret)
    commands["admin"] = lambda args: args.admin_run(args)

    signal = subparsers.add_parser(
        "signal", help="deliver a signal to a suspended execution (operator)",
        description="Find the execution's open waitpoint (or take --waitpoint), read its "
                    "token through the operator route and deliver the signal with it.")
    signal.add_argument("execution_id")
    signal.add_argument("--name", required=True, help="the signal name, e.g. approve")
    signal.add_argument("--payload", metavar="JSON", help="the signal payload (JSON text)")
    signal.add_argument("--waitpoint", metavar="ID", help="the waitpoint to signal")
    signal.add_argument("--source", metavar="WHO", help="source identity (default: $USER)")
    signal.add_argument("--idempotency-key", metavar="KEY")
    _api_options(signal)
    commands["signal"] = _signal
    _add_global_options(parser)
    return parser, commands


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool = True) -> None:
    """`--log-level` and `--log-format` on `parser` and on every subcommand below it, so
    they work before or after the subcommand (`ff worker tasks --log-level debug`).

    Only the top level has a default (None: `configure_logging` then reads the
    environment): a subcommand's parser writes every default it has into the shared
    namespace after the top level parsed, so its copies use SUPPRESS and leave a value
    given before the subcommand alone.
    """
    default = None if top else argparse.SUPPRESS
    options = parser.add_argument_group("logging (before or after the subcommand)")
    options.add_argument("--log-level", choices=LOG_LEVELS, default=default,
                         help="lowest level logged (default: FF_LOG_LEVEL, else info)")
    options.add_argument("--log-format", choices=sorted(LOG_FORMATTERS), default=default,
                         help="one JSON object or one text line per event "
                              "(default: FF_LOG_FORMAT, else json)")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _add_global_options(subparser, top=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default: the command line), run the subcommand, return its exit code."""
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    try:
        configure_logging(args.log_level, args.log_format)
    except ValueError as exc:  # a bad FF_LOG_LEVEL / FF_LOG_FORMAT
        parser.error(str(exc))
    command = commands.get(args.command)
    if command is None:
        module = "ff.worker.cli" if args.command == "worker" else "bench.cli"
        print(f"ff {args.command}: not available in this installation ({module} is missing)",
              file=sys.stderr)
        return 2
    result = command(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
