"""Requests/s of the HTTP API beside the same work done in-process, in one run.

One process boots an ff server with its embedded valkey-server (scanners on, as `ff serve`)
and serves the API on 127.0.0.1. `wrk` (a separate process, 2 threads, 64 keep-alive
connections) then loads, in turn:

  GET  /healthz           a Valkey PING behind the whole HTTP pipeline
  POST /v1/executions     a create with a 32-byte string payload (wrk Lua script)

and right after each, the number of operations wrk completed is done again in-process by 64
concurrent trio tasks on the same server: `client.execute("PING")` for healthz and
`Server.create_execution` for create. The ratio HTTP/direct is the share of the engine's
in-process throughput the HTTP front end delivers. Medians over `--runs` are reported.

    python bench/http_bench.py [--runs 3] [--duration 5] [--out bench/results/http_bench.md]

Needs `wrk` on PATH (Debian: `apt-get install wrk`).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    git_sha,
    host_info,
    package_versions,
    run_bounded,
    server_version_from_info,
    utc_now,
)
from ff.config import ServerConfig
from ff.core.records import CreateExecutionArgs
from ff.http import build_app, serve_http
from ff.script.library import text
from ff.server import Server

CONNECTIONS = 64
WRK_THREADS = 2
PAYLOAD = "x" * 32
CREATE_BODY = f'{{"execution_kind": "bench", "input_payload": "{PAYLOAD}"}}'
POST_SCRIPT = f"""wrk.method = "POST"
wrk.body = '{CREATE_BODY}'
wrk.headers["Content-Type"] = "application/json"
"""
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(output: str) -> WrkResult:
    """Request count, duration, non-2xx + socket errors and latency percentiles."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", output)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+(?:us|ms|s))", output, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       output)
    if socket:
        errors += sum(int(n) for n in socket.groups())

    def pct(key: str) -> float:
        match = re.fullmatch(r"([\d.]+)(us|ms|s)", latency.get(key, "0ms"))
        return _ms(*match.groups()) if match else float("nan")

    return WrkResult(int(done.group(1)), _ms(done.group(2), done.group(3)) / 1000,
                     errors, pct("50"), pct("99"))


async def wrk(url: str, duration: float, script: Path | None = None) -> WrkResult:
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{duration:g}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    outcome = await run_bounded([*cmd, url], timeout=duration + 30)
    if outcome.returncode != 0:
        raise RuntimeError(f"wrk failed ({outcome.returncode}): {outcome.stderr}")
    return parse_wrk(outcome.stdout)


async def direct(total: int, call: Callable[[], Awaitable[object]]) -> float:
    """Calls/s of `total` calls of `call` made by 64 concurrent tasks."""
    per_task, extra = divmod(total, CONNECTIONS)

    async def caller(count: int) -> None:
        for _ in range(count):
            await call()

    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(CONNECTIONS):
            nursery.start_soon(caller, per_task + (1 if i < extra else 0))
    return total / (time.perf_counter() - started)


@dataclass
class Row:
    name: str
    http: list[float]
    direct: list[float]
    p50: list[float]
    p99: list[float]
    errors: int = 0


async def measure(runs: int, duration: float) -> tuple[list[Row], str]:
    with tempfile.TemporaryDirectory(prefix="ff-http-bench") as data_dir:
        config = ServerConfig(data_dir=data_dir, listen_host="127.0.0.1", listen_port=0)
        async with Server.running(config) as server, trio.open_nursery() as nursery:
            port = await nursery.start(partial(serve_http, build_app(server), "127.0.0.1", 0))
            base = f"http://127.0.0.1:{port}"
            script = Path(data_dir) / "post.lua"
            script.write_text(POST_SCRIPT)
            args = CreateExecutionArgs(execution_kind="bench", input_payload=PAYLOAD)
            cases = (
                ("GET /healthz", f"{base}/healthz", None,
                 partial(server.client.execute, "PING"), "client.execute(PING)"),
                ("POST /v1/executions", f"{base}/v1/executions", script,
                 partial(server.create_execution, args), "Server.create_execution"),
            )
            rows = [Row(name, [], [], [], []) for name, *_ in cases]
            for run in range(runs):
                for row, (_, url, lua, call, _label) in zip(rows, cases, strict=True):
                    result = await wrk(url, duration, lua)
                    rate = await direct(result.requests, call)
                    row.http.append(result.rate)
                    row.direct.append(rate)
                    row.p50.append(result.p50_ms)
                    row.p99.append(result.p99_ms)
                    row.errors += result.errors
                    print(f"run {run + 1}: {row.name}: http {result.rate:,.0f}/s "
                          f"(p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
                          f"errors {result.errors}), direct {rate:,.0f}/s, "
                          f"ratio {result.rate / rate:.2f}", flush=True)
            info = text(await server.client.execute("INFO", "server"))
            nursery.cancel_scope.cancel()
    return rows, server_version_from_info(info)


def report(rows: list[Row], runs: int, duration: float, server: str) -> str:
    host = host_info()
    versions = package_versions(("flowfabric", "trio", "h11", "msgspec", "hiredis"))
    labels = {"GET /healthz": "client.execute(PING)",
              "POST /v1/executions": "Server.create_execution"}
    lines = [
        "# HTTP API throughput vs in-process calls",
        "",
        f"`python bench/http_bench.py --runs {runs} --duration {duration:g}` "
        f"({utc_now()}, commit {git_sha()})",
        "",
        f"Machine: {host['cores']} cores (nproc), {host['cpu']}, {host['mem_gb']} GiB RAM, "
        f"{host['os']}; Python {host['python']}; {server} (embedded, AOF everysec); "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        f"Load: `wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{duration:g}s` (keep-alive, "
        "separate process) against one ff server process (scanners on, 256 partitions, auth "
        "off). Direct: the same number of operations by "
        f"{CONNECTIONS} concurrent trio tasks in the server process. Medians of {runs} runs; "
        "wrk, the server and valkey-server share the cores.",
        "",
        "| operation | HTTP req/s | direct ops/s | HTTP/direct | HTTP p50 ms | HTTP p99 ms "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        http, direct_rate = statistics.median(row.http), statistics.median(row.direct)
        lines.append(
            f"| {row.name} (direct: `{labels[row.name]}`) | {http:,.0f} | {direct_rate:,.0f} "
            f"| {http / direct_rate:.2f} | {statistics.median(row.p50):.2f} "
            f"| {statistics.median(row.p99):.2f} | {row.errors} |")
    lines += ["", "Per run (HTTP / direct):", ""]
    for row in rows:
        pairs = ", ".join(f"{h:,.0f} / {d:,.0f}" for h, d in zip(row.http, row.direct,
                                                                 strict=True))
        lines.append(f"- {row.name}: {pairs}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk load")
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("http_bench: wrk is not on PATH (Debian: apt-get install wrk)")
    rows, server = trio.run(measure, args.runs, args.duration)
    text_report = report(rows, args.runs, args.duration, server)
    print()
    print(text_report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text_report)


if __name__ == "__main__":
    main()
