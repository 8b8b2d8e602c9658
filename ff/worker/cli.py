"""`ff worker MODULE[:ATTR]`: runs the `Worker` a user module defines (ATTR defaults to
`worker`), with command-line flags layered over the settings the module gave it.

The top-level dispatcher (`ff/cli.py`) calls `add_worker_parser` and
`run_worker_command`; `python -m ff.worker.cli MODULE[:ATTR] ...` does the same without
it. Nothing here knows how handlers run: that is `Worker.run()`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

import trio

from ff.core.errors import FFError
from ff.resp import errors as resp_errors
from ff.worker._worker import Worker, default_valkey_url


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def add_worker_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="run the handlers of a Worker defined in a module",
        description="Run the Worker defined in MODULE (attribute ATTR, default `worker`) "
                    "until SIGTERM/SIGINT, then drain. Flags override the module's settings.")
    parser.add_argument("target", metavar="MODULE[:ATTR]",
                        help="importable module (the current directory is on the path)")
    parser.add_argument("--valkey-url", help="where leases live (default: FF_VALKEY_URL, else "
                        "the URL an embedded `ff serve` wrote to ./.ff/valkey.url)")
    parser.add_argument("--server-url", help="take claim grants from this ff server "
                        "(http://host:port) instead of scheduling in the worker")
    parser.add_argument("--api-token", default=os.environ.get("FF_API_TOKEN"),
                        help="bearer token for --server-url (default: FF_API_TOKEN)")
    parser.add_argument("--lanes", type=_csv, help="comma-separated lanes to claim from")
    parser.add_argument("--capabilities", type=_csv, help="comma-separated capabilities")
    parser.add_argument("--concurrency", type=_positive_int,
                        help="tasks run at once (max_concurrent)")
    parser.add_argument("--worker-id", help="logical worker (pool) name")
    parser.add_argument("--worker-instance-id", help="this process's id (default: random)")
    parser.add_argument("--namespace", help="worker registry namespace")
    parser.add_argument("--lease-ttl-ms", type=_positive_int, help="lease TTL in ms")
    parser.add_argument("--grace-period", type=float,
                        help="seconds in-flight tasks get after SIGTERM before being given back")
    parser.add_argument("--summary-interval", type=float, metavar="SECONDS",
                        help="seconds between the info summary lines (default 10, 0 = none)")


def load_worker(target: str) -> Worker:
    """Imports MODULE and returns its Worker (attribute ATTR, default `worker`)."""
    module_name, _, attr = target.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    worker = getattr(module, attr or "worker", None)
    if not isinstance(worker, Worker):
        raise ValueError(f"{module_name}.{attr or 'worker'} is not an ff.worker.Worker "
                         f"(got {type(worker).__name__})")
    return worker


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags change (flags not given leave the module's value)."""
    flags = {"valkey_url": args.valkey_url, "server_url": args.server_url,
             "api_token": args.api_token, "lanes": args.lanes,
             "capabilities": args.capabilities, "max_concurrent": args.concurrency,
             "worker_id": args.worker_id, "worker_instance_id": args.worker_instance_id,
             "namespace": args.namespace, "lease_ttl_ms": args.lease_ttl_ms,
             "grace_period_s": args.grace_period,
             "summary_interval_s": args.summary_interval}
    return {name: value for name, value in flags.items() if value is not None}


def configure_logging() -> None:
    """ff's log lines (level and format from FF_LOG_LEVEL / FF_LOG_FORMAT), unless
    logging is set up already (by `ff` itself, or by the user's module)."""
    if logging.getLogger().handlers:
        return
    from ff.cli import configure_logging as log_lines

    log_lines()


def run_worker_command(args: argparse.Namespace) -> int:
    """Runs the worker until it has drained; 0 on a clean stop, 2 on bad usage, 1 when
    the worker could not run (Valkey or the server unreachable, library mismatch)."""
    try:
        worker = load_worker(args.target)
        configure_logging()  # after the import: the module may set logging up itself
        worker.configure(**overrides(args))
        if not (worker.config.valkey_url or default_valkey_url()):
            raise ValueError("no Valkey URL: pass --valkey-url, set FF_VALKEY_URL, or start "
                             "`ff serve` (embedded mode) in this directory first")
    except (ImportError, ValueError) as exc:
        print(f"ff worker: {exc}", file=sys.stderr)
        return 2
    failures: list[BaseException] = []
    try:
        trio.run(worker.run)
    except* (FFError, resp_errors.RespError, OSError, ValueError) as group:
        failures.extend(group.exceptions)
    for failure in failures:
        print(f"ff worker: {failure!r}", file=sys.stderr)
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ff")
    add_worker_parser(parser.add_subparsers(dest="command", required=True))
    return run_worker_command(parser.parse_args(["worker", *(sys.argv[1:] if argv is None
                                                           else argv)]))


if __name__ == "__main__":
    sys.exit(main())
