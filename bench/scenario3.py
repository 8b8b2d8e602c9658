"""Scenario 3: long-running steady state (the reference's method, 6.4), as a soak.

100 distinct ff Workers (max_concurrent 1, lease TTL 6 s, so one renewal per task) in one
child process drain a lane pre-seeded with 10 000 tasks (4 KiB payload, kind
`bench.scenario3`); 20 more are submitted over HTTP every 10 s; every task sleeps 3 s, then
completes. The server (scanners on, HTTP API on a loopback port) runs in this process, Valkey
in its own. Every second the harness samples the RSS of all three processes, Valkey's
`used_memory`, its key count and its connected clients; at the end the child drains on
SIGTERM and reports claim-to-handler-end latencies (the completion call the SDK makes after
the handler is not in them) and the time its workers spent in `renew_lease` calls.

Reported: throughput (whole run and last 60 s) against the ceiling workers / task seconds
(the reference point for this scenario: a soak measures flatness, not speed, so no raw
Valkey run), latency percentiles, renewal overhead = summed renew time / (workers x run
time), and per process the memory growth after warm-up (median of the first 30 s after
warm-up vs the last 30 s) with its slope; the issue's target is growth under 5 %.

Finished executions are kept for the retention period, and each costs Valkey about 12 KB
(`python -m bench.exec_memory`: 4.7 KB of it is the lease history stream's first node), so
with the server's 24 h default Valkey's memory grows with every completion by design. The
soak therefore runs with a short retention (`--retention-ms`, default 60 s) and the
retention trimmer every 5 s: what is kept is bounded, and growth that remains is a leak.

    python -m bench scenario3 [--duration 300] [-w 100] [-n 10000] [--task-seconds 3]
                              [--retention-ms 60000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import trio

from bench.harness import (
    REPO_ROOT,
    git_sha,
    host_info,
    payload_pool,
    percentiles,
    server_version_from_info,
    utc_now,
)

KIND = "bench.scenario3"
WARMUP_S = 60.0
WINDOW_S = 30.0
REFILL = (20, 10.0)  # tasks, every seconds
TRIMMER_INTERVAL_S = 5.0


def rss_kb(pid: int) -> int | None:
    """Resident set size of `pid` from /proc (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def info_fields(text: str, *names: str) -> dict[str, int]:
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in names:
            found[key] = int(value)
    return found


def _solve3(a: list[list[float]], b: list[float]) -> list[float]:
    """x with a x = b for a 3x3 system (Cramer's rule)."""
    def det(m: list[list[float]]) -> float:
        return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
    d = det(a)
    return [det([[b[r] if c == i else a[r][c] for c in range(3)] for r in range(3)]) / d
            for i in range(3)]


def unexplained(used: list[tuple[float, float]], live: list[tuple[float, float]],
                done: list[tuple[float, float]], warmup: float) -> dict[str, float] | None:
    """Valkey memory its data does not explain. After warm-up, `used_memory` is fitted as
    base + per_live x (executions not finished) + per_done x (finished ones still kept);
    the residual is what is left. Its slope over the run, against the median used_memory,
    is the leak indicator (the backlog drains during the run, so raw growth is not)."""
    rows = [(u, lv - dn, dn) for (t, u), (_, lv), (_, dn) in zip(used, live, done, strict=True)
            if t >= warmup]
    if len(rows) < 10:
        return None
    xs = [(1.0, float(a), float(b)) for _, a, b in rows]
    ata = [[sum(x[i] * x[j] for x in xs) for j in range(3)] for i in range(3)]
    atb = [sum(x[i] * r[0] for x, r in zip(xs, rows, strict=True)) for i in range(3)]
    base, per_live, per_done = _solve3(ata, atb)
    times = [t for t, _ in used if t >= warmup]
    residual = [u - (base + per_live * a + per_done * b) for u, a, b in rows]
    slope = statistics.linear_regression(times, residual).slope
    median_used = statistics.median(u for u, _, _ in rows)
    span = times[-1] - times[0]
    return {"base_bytes": round(base), "bytes_per_unfinished": round(per_live),
            "bytes_per_finished_kept": round(per_done),
            "residual_max_abs_bytes": round(max(abs(r) for r in residual)),
            "residual_slope_per_min": round(slope * 60),
            "residual_growth_pct": round(slope * span / median_used * 100, 2)}


def growth(samples: list[tuple[float, float]], warmup: float, window: float
           ) -> dict[str, float] | None:
    """Growth of a series after warm-up: median of its first `window` seconds vs its last,
    in percent, and the least-squares slope over the whole post-warm-up span, per minute."""
    after = [(t, v) for t, v in samples if t >= warmup]
    if len(after) < 4:
        return None
    end = after[-1][0]
    first = [v for t, v in after if t < warmup + window]
    last = [v for t, v in after if t > end - window]
    start_value, end_value = statistics.median(first), statistics.median(last)
    ts = [t for t, _ in after]
    vs = [v for _, v in after]
    slope = statistics.linear_regression(ts, vs).slope if len(set(ts)) > 1 else 0.0
    return {"start": start_value, "end": end_value,
            "growth_pct": round((end_value - start_value) / start_value * 100, 2),
            "slope_per_min": round(slope * 60, 2)}


# -- child: the workers -----------------------------------------------------------------------


async def _child(args: argparse.Namespace) -> None:
    import logging

    from ff.script import lease as lease_fns
    from ff.worker import ClaimedTask, Worker

    logging.getLogger().setLevel(logging.ERROR)
    renew_busy = [0.0, 0]
    original = lease_fns.renew_lease

    async def timed_renew(*a: Any, **kw: Any) -> Any:
        started = trio.current_time()
        try:
            return await original(*a, **kw)
        finally:
            renew_busy[0] += trio.current_time() - started
            renew_busy[1] += 1

    lease_fns.renew_lease = timed_renew  # type: ignore[assignment]
    latencies: list[float] = []
    handled: set[str] = set()
    duplicates = 0

    async def handle(task: ClaimedTask, payload: Any) -> None:
        nonlocal duplicates
        claimed = trio.current_time()
        await trio.sleep(args.task_seconds)
        latencies.append((trio.current_time() - claimed) * 1000)
        duplicates += task.execution_id in handled
        handled.add(task.execution_id)

    workers = []
    for i in range(args.workers):
        worker = Worker(worker_id=f"s3-{i}", valkey_url=args.url, lanes=[args.lane],
                        max_concurrent=1, lease_ttl_ms=args.lease_ttl_ms,
                        summary_interval_s=0)
        worker.handler(KIND)(handle)
        workers.append(worker)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for worker in workers:
            nursery.start_soon(lambda w=worker: w.run(handle_signals=False))
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                break
        for worker in workers:
            worker.stop()
    elapsed = trio.current_time() - started
    print(json.dumps({
        "handled": len(handled), "duplicates": duplicates, "elapsed_s": elapsed,
        "renew_calls": renew_busy[1], "renew_busy_s": renew_busy[0],
        "latency_ms": percentiles(latencies) if latencies else {},
    }), flush=True)


# -- parent: server, seeding, sampling ------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from ff.client import ApiClient
    from ff.config import ScannerIntervals, ServerConfig
    from ff.core.records import CreateExecutionArgs
    from ff.embedded import EmbeddedServer
    from ff.http import serve_http
    from ff.http.routes import build_app
    from ff.server import Server

    lane = f"bench-s3-{uuid.uuid4().hex[:6]}"
    report: dict[str, Any] = {
        "scenario": "scenario3", "method": __doc__.split("\n\n")[1].replace("\n", " "),
        "host": host_info(), "git_sha": git_sha(), "timestamp_utc": utc_now(),
        "config": {"workers": args.workers, "seeded": args.n, "duration_s": args.duration,
                   "task_seconds": args.task_seconds, "lease_ttl_ms": args.lease_ttl_ms,
                   "refill": {"tasks": REFILL[0], "every_s": REFILL[1]},
                   "warmup_s": args.soak_warmup, "payload_bytes": args.payload_bytes,
                   "retention_ms": args.retention_ms,
                   "retention_trimmer_interval_s": TRIMMER_INTERVAL_S},
    }
    payloads = payload_pool(args.payload_bytes)
    with tempfile.TemporaryDirectory(prefix="ff-bench3-") as tmp:
        embedded = EmbeddedServer(Path(tmp) / "valkey")
        await embedded.start()
        assert embedded.process is not None
        retention = {"retention_default_ms": args.retention_ms} if args.retention_ms else {}
        config = ServerConfig(valkey_url=embedded.url, lanes=(lane,), listen_host="127.0.0.1",
                              listen_port=0, waitpoint_hmac_secret=secrets.token_hex(32),
                              intervals=ScannerIntervals(retention_trimmer=TRIMMER_INTERVAL_S),
                              **retention)  # type: ignore[arg-type]
        try:
            async with Server.running(config) as server, trio.open_nursery() as nursery:
                info = await server.client.execute("INFO", "server")
                report["valkey_version"] = server_version_from_info(
                    info.decode() if isinstance(info, bytes) else str(info))

                async def submit(i: int) -> None:
                    await server.create_execution(CreateExecutionArgs(
                        execution_kind=KIND, lane_id=lane, payload_encoding="binary",
                        input_payload=payloads[i % len(payloads)]))

                seed_started = trio.current_time()
                for i in range(args.n):
                    await submit(i)
                report["seed_s"] = round(trio.current_time() - seed_started, 1)
                port = await nursery.start(serve_http, build_app(server), "127.0.0.1", 0)
                child = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "bench.scenario3", "--child", "--url", embedded.url,
                     "--lane", lane, "-w", str(args.workers),
                     "--task-seconds", str(args.task_seconds),
                     "--lease-ttl-ms", str(args.lease_ttl_ms)],
                    stdout=subprocess.PIPE, cwd=REPO_ROOT,
                    env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
                pids = {"harness+server": os.getpid(), "workers": child.pid,
                        "valkey": embedded.process.pid}
                samples = await _sample(server, ApiClient(f"http://127.0.0.1:{port}"), lane,
                                        pids, args, payloads)
                child.send_signal(signal.SIGTERM)
                assert child.stdout is not None
                out = b""
                with trio.fail_after(60):
                    while chunk := await child.stdout.receive_some():
                        out += chunk
                    await child.wait()
                report["workers"] = json.loads(out.decode().strip().splitlines()[-1])
                nursery.cancel_scope.cancel()
        finally:
            await embedded.stop()
    _summarise(report, samples, args)
    return report


async def _sample(server: Any, api: Any, lane: str, pids: dict[str, int],
                  args: argparse.Namespace, payloads: list[str]) -> dict[str, Any]:
    """One sample a second for `duration`; refills REFILL[0] tasks every REFILL[1] s."""
    from ff.core.records import CreateExecutionArgs

    series: dict[str, list[tuple[float, float]]] = {f"rss_kb:{name}": [] for name in pids}
    series["valkey_used_memory"] = []
    series["valkey_connected_clients"] = []
    series["valkey_keys"] = []
    series["executions_kept"] = []
    series["executions_finished_kept"] = []
    completed: list[tuple[float, int]] = []
    start = trio.current_time()
    next_refill = REFILL[1]
    created = args.n
    async with api:
        while (now := trio.current_time() - start) < args.duration:
            for name, pid in pids.items():
                value = rss_kb(pid)
                if value is not None:
                    series[f"rss_kb:{name}"].append((now, value))
            raw = await server.client.execute("INFO", "all")
            fields = info_fields(raw.decode() if isinstance(raw, bytes) else str(raw),
                                 "used_memory", "connected_clients")
            series["valkey_used_memory"].append((now, fields["used_memory"]))
            series["valkey_connected_clients"].append((now, fields["connected_clients"]))
            series["valkey_keys"].append((now, int(await server.client.execute("DBSIZE"))))
            # Purged executions leave every count: completions so far are the ones still
            # counted as completed plus every created one no longer counted at all.
            counts = await api.lane_counts(lane)
            completed.append((now, created - sum(counts.values()) + counts.get("completed", 0)))
            series["executions_kept"].append((now, sum(counts.values())))
            series["executions_finished_kept"].append((now, counts.get("completed", 0)))
            if now >= next_refill:
                next_refill += REFILL[1]
                created += REFILL[0]
                for i in range(REFILL[0]):
                    await api.create_execution(CreateExecutionArgs(
                        execution_kind=KIND, lane_id=lane, payload_encoding="binary",
                        input_payload=payloads[i]))
            await trio.sleep_until(start + len(completed))
    return {"series": series, "completed": completed}


def _summarise(report: dict[str, Any], samples: dict[str, Any],
               args: argparse.Namespace) -> None:
    series, completed = samples["series"], samples["completed"]
    end_t, end_done = completed[-1]
    window = [(t, c) for t, c in completed if t >= end_t - 60]
    ceiling = args.workers / args.task_seconds
    workers = report["workers"]
    whole = end_done / end_t if end_t else 0.0
    steady = ((window[-1][1] - window[0][1]) / (window[-1][0] - window[0][0])
              if len(window) > 1 and window[-1][0] > window[0][0] else 0.0)
    report["throughput"] = {"whole_run_per_s": round(whole, 2),
                            "last_60s_per_s": round(steady, 2),
                            "ceiling_per_s": round(ceiling, 2),
                            "last_60s_vs_ceiling": round(steady / ceiling, 3)}
    report["renewal_overhead_pct"] = round(
        workers["renew_busy_s"] / (args.workers * workers["elapsed_s"]) * 100, 4)
    report["memory"] = {name: growth(values, args.soak_warmup, WINDOW_S)
                        for name, values in series.items()}
    report["valkey_unexplained"] = unexplained(
        series["valkey_used_memory"], series["executions_kept"],
        series["executions_finished_kept"], args.soak_warmup)
    clients = [v for t, v in series["valkey_connected_clients"] if t >= args.soak_warmup]
    report["connections"] = {"min_after_warmup": min(clients, default=0),
                             "max_after_warmup": max(clients, default=0)}
    report["samples"] = {name: len(values) for name, values in series.items()}
    report["series"] = {name: values[::10] for name, values in series.items()}


def markdown(report: dict[str, Any]) -> str:
    host = report["host"]
    lines = [
        f"# Scenario 3 soak ({report['config']['duration_s']:.0f} s), {report['timestamp_utc']}",
        "",
        f"Machine: {host['cores']} cores ({host['cpu']}), {host['mem_gb']} GB, Python "
        f"{host['python']}, {report['valkey_version']}; git {report['git_sha']}. Shared with "
        "other developers' test runs while it ran. One run (a 5-minute soak is one sample).",
        "",
        report["method"],
        "",
        "| series | after warm-up | end | growth | slope / min |",
        "|---|---|---|---|---|",
    ]
    for name, g in report["memory"].items():
        if g is not None:
            lines.append(f"| {name} | {g['start']:.0f} | {g['end']:.0f} | {g['growth_pct']} % "
                         f"| {g['slope_per_min']} |")
    t, w = report["throughput"], report["workers"]
    lines += [
        "",
        f"- throughput: {t['whole_run_per_s']}/s whole run, {t['last_60s_per_s']}/s in the "
        f"last 60 s; ceiling {t['ceiling_per_s']}/s (workers / task seconds): "
        f"{t['last_60s_vs_ceiling']:.1%} of it",
        f"- claim-to-handler-end latency ms: {w['latency_ms']}",
        f"- renewals: {w['renew_calls']}, renewal overhead {report['renewal_overhead_pct']} % "
        "of worker time",
        f"- handled {w['handled']}, duplicates {w['duplicates']}",
        f"- Valkey connected clients after warm-up: {report['connections']}",
        f"- Valkey used_memory fitted to its data (retention {report['config']['retention_ms']} "
        f"ms): {report['valkey_unexplained']}",
    ]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags only scenario 3 has (`ff bench` adds them to its own)."""
    parser.add_argument("--duration", type=float, default=300.0,
                        help="scenario3: seconds of steady state (default 300)")
    parser.add_argument("--soak-warmup", type=float, default=WARMUP_S,
                        help="scenario3: seconds before memory growth is measured (default 60)")
    parser.add_argument("--task-seconds", type=float, default=3.0,
                        help="scenario3: each task's sleep (default 3)")
    parser.add_argument("--lease-ttl-ms", type=int, default=6_000,
                        help="scenario3: worker lease TTL (default 6000)")
    parser.add_argument("--retention-ms", type=int, default=60_000,
                        help="scenario3: retention of finished executions (default 60000; "
                             "0: the server's default, 24 h)")


def main(args: argparse.Namespace) -> int:
    """Runs the soak, writes the JSON and markdown report; 1 if a task ran twice."""
    args.out = args.out or str(REPO_ROOT / "bench" / "results")
    report = trio.run(run, args)
    stamp = report["timestamp_utc"].replace(":", "").replace("-", "")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    out = Path(args.out) / f"scenario3-{report['git_sha'].replace('+', '-')}-{stamp}"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"report: {out.with_suffix('.json')}")
    return 0 if report["workers"]["duplicates"] == 0 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.scenario3")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--url")
    parser.add_argument("--lane")
    parser.add_argument("-w", "--workers", type=int, default=100)
    parser.add_argument("-n", "--tasks", type=int, default=10_000, dest="n")
    parser.add_argument("--payload-bytes", type=int, default=4096)
    parser.add_argument("--out", default=None)
    add_arguments(parser)
    parsed = parser.parse_args()
    if parsed.child:
        trio.run(_child, parsed)
    else:
        sys.exit(main(parsed))
