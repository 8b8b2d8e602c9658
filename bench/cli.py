"""`ff bench`: the command line of the load-test harness.

`ff.cli` calls `add_bench_parser(subparsers)` to register the sub-command and
`run_bench_command(args)` to run it; `python -m bench` does the same on its own. One
invocation measures one scenario: the raw-Valkey baseline, ff, and optionally the peer
libraries, each `--runs` times on the same Valkey, and writes a JSON report plus a summary
table (medians when several runs were made).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import trio

from bench import scenario3
from bench.harness import (
    REPO_ROOT,
    Progress,
    Report,
    RunConfig,
    SystemResult,
    bench_valkey,
    git_sha,
    host_info,
    server_version,
    utc_now,
)

SCENARIOS = ("scenario1", "scenario2", "scenario3", "scenario4", "scenario5", "scenario6")
SAMPLES_DEFAULT = {"scenario2": 5, "scenario6": 10}
# -n / -w when not given: scenarios 3 and 5 use the reference's 100 workers, scenario 5
# its 1,000 tasks.
TASKS_DEFAULT = {"scenario5": 1_000}
WORKERS_DEFAULT = {"scenario3": 100, "scenario5": 100}
DEFAULT_OUT = REPO_ROOT / "bench" / "results"


def add_bench_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Registers `bench` on an argparse sub-parser collection; returns its parser."""
    parser = subparsers.add_parser(
        "bench", help="run a load-test scenario against ff, raw Valkey and peer libraries",
        description="Runs a benchmark scenario (default scenario1: submit -> claim -> "
                    "complete) and writes a JSON report plus a summary table.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", default="scenario1", choices=SCENARIOS,
                        help="scenario1: submit -> claim -> complete; scenario2: suspend -> "
                             "signal -> resume; scenario3: 5-minute steady-state soak; "
                             "scenario4: linear 10-node flows; scenario5: capability-routed "
                             "claim; scenario6: quorum cancel fan-out")
    parser.add_argument("--flows", type=int, default=100,
                        help="scenario4: concurrent 10-node flows (default 100)")
    parser.add_argument("--fanout", type=lambda v: [int(x) for x in v.split(",")],
                        default=[10, 100, 1000],
                        help="scenario6: sibling counts, comma-separated (default 10,100,1000)")
    parser.add_argument("--samples", type=int, default=None,
                        help="scenario2: batches of --per-sample round trips (default 5); "
                             "scenario6: samples per sibling count (default 10)")
    parser.add_argument("--modes", type=lambda v: v.split(","),
                        default=["happy", "partial", "scarce"],
                        help="scenario5: modes, comma-separated (default happy,partial,scarce)")
    parser.add_argument("--admission", action="store_true",
                        help="scenario1: also run ff with one budget and one quota attached "
                             "to every execution, and report its ratio to ff without them")
    parser.add_argument("-n", "--tasks", type=int, default=None, dest="n",
                        help="executions per measurement (default 10000; scenario5 1000)")
    parser.add_argument("-w", "--workers", type=int, default=None,
                        help="workers/consumers draining the queue (default 16; scenarios 3 "
                             "and 5: 100)")
    parser.add_argument("--procs", type=int, default=0,
                        help="run the workers in this many child processes (default 0: in the "
                             "harness process)")
    parser.add_argument("--worker-concurrency", type=_int_list, default=[1],
                        help="max_concurrent of each ff Worker (default 1, as the reference;"
                             " e.g. -w 2 --procs 2 --worker-concurrency 8 is one Worker per "
                             "process running 8 tasks at once); a comma list (8,32) sweeps: "
                             "every system runs at each, and the table keeps its best")
    parser.add_argument("--payload-bytes", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=32,
                        help="submissions in flight at once (default 32)")
    parser.add_argument("--spread", choices=("solo", "partitions"), default="solo",
                        help="solo: ids minted by the server on the lane's partition; "
                             "partitions: ids spread over every partition")
    parser.add_argument("--submit", type=_submit_list, default=["http"],
                        help="how ff's submitters create executions: one HTTP request each "
                             "(http, the default), Server.create_execution in-process "
                             "(direct), POST /v1/executions:batch (batch), or the direct "
                             "producer ff.Client (producer), the last two 100 per call; a "
                             "comma list runs ff once per mode, as systems `ff (mode)`")
    parser.add_argument("--url", default=None,
                        help="use this Valkey (redis://host:port/db) instead of a private "
                             "embedded valkey-server; nothing is flushed there")
    parser.add_argument("--peers", nargs="?", const="all", default=None,
                        help="also run peer libraries: 'all' or a comma list of "
                             "arq,saq,taskiq,rq,dramatiq,celery")
    parser.add_argument("--peers-dir", default=None,
                        help="where the peers' virtualenvs live (default $FF_BENCH_PEERS_DIR "
                             "or /tmp/ff-bench-peers; see `python -m bench.peers install`)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the raw-Valkey run")
    parser.add_argument("--no-ff", action="store_true", help="skip ff itself")
    parser.add_argument("--no-phased", action="store_true",
                        help="only the end-to-end measurement (no seed-then-drain)")
    parser.add_argument("--runs", type=int, default=1,
                        help="repeat everything this many times; the table shows medians")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds each system may take per measurement (default 300)")
    parser.add_argument("--out", default=None,
                        help=f"directory for the report (default {DEFAULT_OUT})")
    parser.add_argument("--json", default=None, help="write the report to exactly this path")
    parser.add_argument("--per-sample", type=int, default=100,
                        help="scenario2: round trips per batch (default 100)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="scenario2: untimed round trips first (default 20)")
    parser.add_argument("--no-progress", action="store_true",
                        help="never draw the progress bar (it is drawn only on a terminal)")
    scenario3.add_arguments(parser)


SUBMIT_MODES = ("http", "direct", "batch", "producer")


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _submit_list(text: str) -> list[str]:
    modes = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [m for m in modes if m not in SUBMIT_MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"submit modes are {', '.join(SUBMIT_MODES)}")
    return modes


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The first sweep step's configuration (`run_report` makes the others)."""
    return RunConfig(n=args.n, workers=args.workers, procs=args.procs,
                     payload_bytes=args.payload_bytes, submit_concurrency=args.concurrency,
                     timeout=args.timeout, phased=not args.no_phased, spread=args.spread,
                     worker_concurrency=args.worker_concurrency[0], submit=args.submit[0])


def run_bench_command(args: argparse.Namespace) -> int:
    """Runs `ff bench` as parsed; prints the summary, returns the exit code (0 when every
    system that ran was verified, 1 otherwise, 2 on a usage error)."""
    if args.samples is None:
        args.samples = SAMPLES_DEFAULT.get(args.scenario, 1)
    if args.n is None:
        args.n = TASKS_DEFAULT.get(args.scenario, 10_000)
    if args.workers is None:
        args.workers = WORKERS_DEFAULT.get(args.scenario, 16)
    if args.scenario == "scenario3":
        return scenario3.main(args)
    if args.scenario == "scenario5":
        from bench import scenario5

        return scenario5.main(args)
    if args.scenario == "scenario2":
        if min(args.samples, args.per_sample) < 1 or args.warmup < 0:
            print("ff bench: --samples and --per-sample must be >= 1", file=sys.stderr)
            return 2
        from bench import scenario2

        return scenario2.main(args)
    if args.scenario in ("scenario4", "scenario6"):
        from bench.flows import run_flow_bench
        return run_flow_bench(args)
    if min(args.n, args.workers, args.runs, args.concurrency, *args.worker_concurrency) < 1:
        print("ff bench: --tasks, --workers, --runs, --concurrency and --worker-concurrency "
              "must be >= 1",
              file=sys.stderr)
        return 2
    try:
        peers = _peer_names(args.peers)
    except ValueError as exc:
        print(f"ff bench: {exc}", file=sys.stderr)
        return 2
    progress = Progress(enabled=not args.no_progress)
    report = trio.run(run_report, config_from_args(args), args.url, peers, args.runs,
                      not args.no_baseline, not args.no_ff, args.peers_dir, progress,
                      args.worker_concurrency, args.submit, args.admission)
    if args.json:
        path = report.write(Path(args.json))
    else:
        out = Path(args.out) if args.out else DEFAULT_OUT
        sha = (report.git_sha or "nogit").replace("+", "-")
        stamp = report.timestamp_utc.replace(":", "").replace("-", "")
        path = report.write(out / f"{report.scenario}-{sha}-{stamp}.json")
        path.with_suffix(".md").write_text(report.markdown())
    print(report.summary())
    print(f"\nreport: {path}")
    ran = [r for r in report.results if r.status != "skipped"]
    return 0 if ran and all(r.status == "ok" and r.verified for r in ran) else 1


def _peer_names(spec: str | None) -> list[str]:
    from bench.peers import PEERS

    if not spec:
        return []
    if spec == "all":
        return list(PEERS)
    names = [p.strip() for p in spec.split(",") if p.strip()]
    unknown = [p for p in names if p not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    return names


class _WarningTally(logging.Handler):
    """Counts warnings and errors logged by ff during the run (for the report's notes)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Tally[str] = Tally()
        self.example: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name} {record.levelname.lower()}"
        self.counts[key] += 1
        self.example.setdefault(key, record.getMessage()[:160])


async def run_report(cfg: RunConfig, url: str | None, peers: list[str], runs: int,
                     baseline: bool, ff: bool, peers_dir: str | None,
                     progress: Progress, concurrencies: list[int] | None = None,
                     submits: list[str] | None = None, admission: bool = False) -> Report:
    """Every requested system at every worker concurrency of the sweep, `runs` times, on
    one Valkey. The report holds, per system, the medians at its best concurrency
    (`results`), the medians at every concurrency (`sweep`) and every single run (`runs`).
    Each result carries the Valkey CPU it cost per task (INFO cpu delta / tasks). With
    `admission`, ff also runs with one budget and one quota on every execution."""
    from bench import baseline as baseline_mod
    from bench import scenario1
    from bench.peers import run_peer
    from ff.resp import Client

    concurrencies = concurrencies or [cfg.worker_concurrency]
    submits = submits or [cfg.submit]
    tally = _WarningTally()
    root = logging.getLogger()
    # During the run ff's own records are only counted (a line per record on stderr would
    # cost the measured process time and break the progress line); restored afterwards.
    previous_handlers, previous_level = root.handlers[:], root.level
    root.handlers[:] = [tally]
    root.setLevel(logging.WARNING)
    config = _config_dict(cfg, runs, url, peers)
    config.update(worker_concurrency_sweep=concurrencies, submit_modes=submits,
                  admission=admission)
    report = Report(scenario="scenario1", config=config,
                    host=host_info(), git_sha=git_sha(), timestamp_utc=utc_now())
    all_runs: list[list[SystemResult]] = []
    private = False
    try:
        async with bench_valkey(url) as (url, private), Client.from_url(url) as client:
            report.valkey_version = await server_version(client)

            async def measure(system: str, step: RunConfig, measurement: Any
                              ) -> SystemResult:
                if private:
                    await client.execute("FLUSHALL")
                before = await _valkey_cpu_s(client)
                result = await _guarded(system, step, measurement)
                result.system = system
                result.worker_concurrency = step.worker_concurrency
                tasks = step.n * (2 if result.drain_rate is not None else 1)
                if result.status == "ok":
                    spent = await _valkey_cpu_s(client) - before
                    result.valkey_cpu_us = round(spent * 1e6 / tasks, 1)
                return result

            for run_index in range(runs):
                progress.message(f"run {run_index + 1}/{runs}")
                results: list[SystemResult] = []
                for wc in concurrencies:
                    step = dataclasses.replace(cfg, worker_concurrency=wc)
                    if baseline:
                        results.append(await measure(
                            baseline_mod.SYSTEM, step,
                            baseline_mod.run(url, step, progress)))
                    if ff:
                        for mode in submits:
                            ff_step = dataclasses.replace(step, submit=mode)
                            name = (scenario1.SYSTEM if len(submits) == 1
                                    else f"{scenario1.SYSTEM} ({mode})")
                            results.append(await measure(
                                name, ff_step, scenario1.run(url, ff_step, progress)))
                            if admission:
                                results.append(await measure(
                                    name.replace(scenario1.SYSTEM,
                                                 scenario1.ADMITTED_SYSTEM),
                                    ff_step, scenario1.run(url, ff_step, progress,
                                                           admitted=True)))
                    for name in peers:
                        results.append(await measure(
                            name, step, run_peer(name, url, step, progress, peers_dir)))
                all_runs.append(results)
    finally:
        root.handlers[:] = previous_handlers
        root.setLevel(previous_level)
    report.sweep = median_results(all_runs)
    report.results = best_per_system(report.sweep)
    report.runs = all_runs
    if ff and admission:
        report.notes += admission_ratios(all_runs)
    if private:
        report.notes.append("private valkey-server (appendonly yes, appendfsync everysec), "
                            "FLUSHALL before each system")
    if len(concurrencies) > 1:
        report.notes.append(f"worker concurrency sweep {concurrencies}: each system's row is "
                            "its best median e2e/s (`wc` column); every step is in `sweep`")
    for key, count in tally.counts.most_common():
        report.notes.append(f"{count} log records '{key}' in the harness process, e.g. "
                            f"{tally.example[key]!r}")
    return report


async def _valkey_cpu_s(client: Any) -> float:
    """used_cpu_user + used_cpu_sys of the Valkey server, in seconds."""
    raw = await client.execute("INFO", "cpu")
    fields = dict(line.split(":", 1) for line in
                  (raw.decode() if isinstance(raw, bytes) else str(raw)).splitlines()
                  if ":" in line)
    return float(fields["used_cpu_user"]) + float(fields["used_cpu_sys"])


async def _guarded(system: str, cfg: RunConfig, measurement: Any) -> SystemResult:
    """Awaits one system's measurement; an error becomes a `failed` result with its
    message instead of ending the whole run (the other systems still report)."""
    try:
        return await measurement
    except Exception as exc:
        detail = exc
        while isinstance(detail, BaseExceptionGroup) and len(detail.exceptions) == 1:
            detail = detail.exceptions[0]
        return SystemResult(system, status="failed", n=cfg.n,
                            notes=[f"{type(detail).__name__}: {detail}"[:500]])


def _config_dict(cfg: RunConfig, runs: int, url: str | None, peers: list[str]) -> dict[str, Any]:
    return {"tasks": cfg.n, "n": cfg.n, "workers": cfg.workers, "slots": cfg.slots,
            "procs": cfg.procs,
            "payload_bytes": cfg.payload_bytes, "submit_concurrency": cfg.submit_concurrency,
            "phased": cfg.phased, "spread": cfg.spread, "timeout_s": cfg.timeout, "runs": runs,
            "worker_concurrency": cfg.worker_concurrency, "submit": cfg.submit,
            "valkey": "external" if url else "embedded", "peers": peers}


_MEDIAN_FIELDS = ("e2e_rate", "submit_rate", "drain_rate", "valkey_cpu_us")


def admission_ratios(all_runs: list[list[SystemResult]]) -> list[str]:
    """ff with a budget and a quota on every execution against ff without them, per run
    (both measured in the same run) and the median, for the drain (claim) and e2e rates."""
    notes = []
    for field_name in ("drain_rate", "e2e_rate"):
        ratios = []
        for results in all_runs:
            by_name = {r.system: getattr(r, field_name) for r in results if r.status == "ok"}
            plain, admitted = by_name.get("ff"), by_name.get("ff+admission")
            if plain and admitted:
                ratios.append(round(admitted / plain, 3))
        if ratios:
            notes.append(f"admission overhead: ff+admission / ff {field_name} = "
                         f"{statistics.median(ratios):.3f} (median; per run {ratios})")
    return notes


def median_results(all_runs: list[list[SystemResult]]) -> list[SystemResult]:
    """One result per system: the median of each rate and latency percentile over the runs
    that finished ok; status/verified say whether every run was ok and verified."""
    if len(all_runs) == 1:
        return all_runs[0]
    order: list[str] = []
    by_system: dict[str, list[SystemResult]] = {}
    for results in all_runs:
        for r in results:
            key = f"{r.system}@{r.worker_concurrency}"
            if key not in by_system:
                order.append(key)
            by_system.setdefault(key, []).append(r)
    merged = []
    for key in order:
        rs = by_system[key]
        good = [r for r in rs if r.status == "ok"]
        first = rs[0]
        m = SystemResult(first.system, n=first.n, latency_source=first.latency_source,
                         config=first.config, versions=first.versions,
                         worker_concurrency=first.worker_concurrency)
        bad = [r for r in rs if r.status != "ok"]
        m.status = "ok" if not bad else (bad[0].status if not good else "ok")
        m.verified = bool(good) and all(r.verified for r in rs if r.status != "skipped")
        m.completed = min((r.completed for r in rs), default=0)
        for field_name in _MEDIAN_FIELDS:
            values = [getattr(r, field_name) for r in good if getattr(r, field_name)]
            if values:
                setattr(m, field_name, round(statistics.median(values), 1))
        for q in ("p50", "p95", "p99"):
            values = [r.latency_ms[q] for r in good if q in r.latency_ms]
            if values:
                m.latency_ms[q] = round(statistics.median(values), 3)
        m.notes = [f"median of {len(good)}/{len(rs)} runs"
                   + (f"; e2e/s per run: {[r.e2e_rate for r in rs]}" if len(rs) > 1 else "")]
        m.notes += sorted({n for r in rs for n in r.notes})
        merged.append(m)
    return merged


def best_per_system(results: list[SystemResult]) -> list[SystemResult]:
    """Per system (first-seen order), its result at the concurrency with the highest
    e2e/s (an ok result beats any failed one)."""
    best: dict[str, SystemResult] = {}
    for r in results:
        held = best.get(r.system)
        if held is None or (r.status == "ok", r.e2e_rate or 0) > (
                held.status == "ok", held.e2e_rate or 0):
            best[r.system] = r
    return list(best.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add_arguments(parser)
    return run_bench_command(parser.parse_args(argv))
