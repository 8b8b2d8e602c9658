"""Shared pieces of the load-test harness: results, the report, timing, host facts, progress.

What lives here: `SystemResult` (one system's figures in one run: ff, the raw-Valkey
baseline or a peer), `Report` (the JSON document and the one-screen summary table),
nearest-rank percentiles, host/version facts, a live progress line drawn only when stderr
is a terminal, and `run_bounded` (a child process with a hard time limit, killed with its
whole process group). What must not live here: anything that talks to ff or to a peer
library (the scenario and peer modules do that).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import trio

from ff.embedded import EmbeddedServer

REPO_ROOT = Path(__file__).resolve().parent.parent
CORE_PACKAGES = ("flowfabric", "trio", "msgspec", "hiredis", "h11")


# -- figures ----------------------------------------------------------------------------


def percentiles(samples_ms: Sequence[float], qs: Sequence[float] = (0.5, 0.95, 0.99)
                ) -> dict[str, float]:
    """Nearest-rank percentiles (index = round((n-1)*q) into the sorted samples), in ms.

    Keys are `p50`, `p95`, `p99` (for the default qs); an empty input gives an empty dict.
    """
    if not samples_ms:
        return {}
    ordered = sorted(samples_ms)
    last = len(ordered) - 1
    out: dict[str, float] = {}
    for q in qs:
        name = f"p{round(q * 100):d}" if q * 100 == round(q * 100) else f"p{q * 100:g}"
        out[name] = round(ordered[round(last * q)], 3)
    return out


def rate(count: int, seconds: float | None) -> float | None:
    """count / seconds rounded to 0.1, None when the time is unknown or zero."""
    if not seconds or seconds <= 0:
        return None
    return round(count / seconds, 1)


@dataclass
class RunConfig:
    """What every system in a run is asked to do (the report's `config`)."""

    n: int = 10_000
    workers: int = 16
    procs: int = 0
    payload_bytes: int = 4096
    submit_concurrency: int = 32
    timeout: float = 300.0
    phased: bool = True
    spread: str = "solo"
    worker_concurrency: int = 1
    submit: str = "http"

    @property
    def slots(self) -> int:
        """Jobs in progress at once: ff's workers x their max_concurrent. The baseline
        runs this many consumers and every peer this much concurrency in total."""
        return self.workers * self.worker_concurrency

    def worker_split(self, total: int | None = None) -> list[int]:
        """`total` (default: workers) spread over `procs` processes (0: in-process)."""
        total = self.workers if total is None else total
        procs = max(self.procs, 1)
        base, extra = divmod(total, procs)
        return [base + (1 if i < extra else 0) for i in range(procs) if base or i < extra]


def payload_pool(size: int, count: int = 64, seed: int = 6) -> list[str]:
    """`count` distinct pseudo-random ASCII payloads of `size` bytes (hex digits), fixed seed
    so every system gets the same bytes; submissions cycle through them."""
    import random

    rng = random.Random(seed)
    return [rng.randbytes((size + 1) // 2).hex()[:size] for _ in range(count)]


@dataclass
class SystemResult:
    """One system's outcome in a run. `status`: ok | failed | timeout | skipped.

    Rates are per second. `e2e_rate` is the headline: N jobs submitted with workers already
    running, N / (first submit -> last job seen done). `submit_rate` and `drain_rate` come
    from the phased measurement where the system has one (seed N, then start the drain).
    """

    system: str
    status: str = "ok"
    n: int = 0
    e2e_rate: float | None = None
    submit_rate: float | None = None
    drain_rate: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    latency_source: str = ""
    verified: bool = False
    completed: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    worker_concurrency: int | None = None
    valkey_cpu_us: float | None = None  # Valkey CPU (INFO cpu delta) per task, us

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SystemResult:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class Report:
    """The JSON report of one `ff bench` run (one scenario, every system measured)."""

    scenario: str
    config: dict[str, Any]
    results: list[SystemResult] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)
    valkey_version: str = ""
    git_sha: str = ""
    timestamp_utc: str = ""
    notes: list[str] = field(default_factory=list)
    system: str = "flowfabric"
    runs: list[list[SystemResult]] = field(default_factory=list)
    sweep: list[SystemResult] = field(default_factory=list)

    def result(self, system: str) -> SystemResult | None:
        return next((r for r in self.results if r.system == system), None)

    def ratios(self) -> dict[str, float]:
        """Each system's e2e rate as a fraction of the baseline's (when both exist)."""
        base = self.result("valkey-baseline")
        if base is None or not base.e2e_rate:
            return {}
        return {r.system: round(r.e2e_rate / base.e2e_rate, 3)
                for r in self.results if r.e2e_rate}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        ff = next((r for r in self.results if r.system.startswith("ff")), None)
        # The flat fields of the reference report, filled from ff's own figures.
        data["throughput_ops_per_sec"] = ff.e2e_rate if ff else None
        data["latency_ms"] = ff.latency_ms if ff else {}
        data["ratio_to_baseline"] = self.ratios()
        return data

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path

    def markdown(self) -> str:
        """The report as a markdown page: host, configuration, the table, the notes."""
        host = self.host
        cfg = self.config
        ratios = self.ratios()
        where = f"in {cfg['procs']} processes" if cfg.get("procs") else "in-process"
        lines = [
            f"# {self.scenario}: {self.timestamp_utc}, commit {self.git_sha or '?'}", "",
            f"Host: {host.get('cores')} cores ({host.get('cpu', '?')}), {host.get('mem_gb')} "
            f"GiB, {host.get('os')}, Python {host.get('python')}, {self.valkey_version}.", "",
            f"N={cfg.get('n')} executions/jobs per measurement, {cfg.get('workers')} ff workers"
            f" x max_concurrent {cfg.get('worker_concurrency', 1)} ({where}; the baseline and"
            f" the peers run {cfg.get('slots', cfg.get('workers'))} jobs at once too), "
            f"{cfg.get('payload_bytes')} B payload, submit concurrency "
            f"{cfg.get('submit_concurrency')}, {cfg.get('runs', 1)} run(s)"
            + (" (medians)" if cfg.get("runs", 1) > 1 else "") + ".", "",
            "| system | status | wc | e2e/s | vs baseline | submit/s | drain/s | valkey us/task "
            "| p50 ms | p95 ms | p99 ms | verified |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.results:
            lat = r.latency_ms
            lines.append(
                f"| {r.system} | {r.status} | {r.worker_concurrency or '-'} | "
                f"{_fmt(r.e2e_rate)} | "
                f"{_fmt_ratio(ratios.get(r.system))} | {_fmt(r.submit_rate)} | "
                f"{_fmt(r.drain_rate)} | {_fmt(r.valkey_cpu_us)} | {_fmt(lat.get('p50'))} | "
                f"{_fmt(lat.get('p95'))} | "
                f"{_fmt(lat.get('p99'))} | {r.completed}/{r.n}"
                f"{'' if r.verified else ' (not verified)'} |")
        lines.append("")
        for r in self.results:
            lines.append(f"- **{r.system}**: {json.dumps(r.config, sort_keys=True)}"
                         + (f"; latency: {r.latency_source}" if r.latency_source else "")
                         + "".join(f"; {n}" for n in r.notes))
        lines.extend(f"- {n}" for n in self.notes)
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        """A one-screen table: one line per system, then the notes."""
        host = self.host
        head = (f"{self.scenario}  N={self.config.get('n')}  workers={self.config.get('workers')}"
                f" x {self.config.get('worker_concurrency', 1)}"
                f"  payload={self.config.get('payload_bytes')} B  host: {host.get('cores')} cores"
                f" {host.get('cpu', '?')}, {host.get('mem_gb')} GiB, {self.valkey_version}")
        ratios = self.ratios()
        rows = [("system", "status", "wc", "e2e/s", "vs base", "submit/s", "drain/s",
                 "vk us/task", "p50 ms", "p95 ms", "p99 ms", "verified")]
        for r in self.results:
            lat = r.latency_ms
            rows.append((
                r.system, r.status, str(r.worker_concurrency or "-"), _fmt(r.e2e_rate),
                _fmt_ratio(ratios.get(r.system)), _fmt(r.submit_rate), _fmt(r.drain_rate),
                _fmt(r.valkey_cpu_us), _fmt(lat.get("p50")),
                _fmt(lat.get("p95")), _fmt(lat.get("p99")),
                f"{r.completed}/{r.n}" + ("" if r.verified else " !") if r.n else "-",
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [head, ""]
        for i, row in enumerate(rows):
            lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                                   for j, (c, w) in enumerate(zip(row, widths, strict=True))))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        notes = [f"{r.system}: {n}" for r in self.results for n in r.notes] + self.notes
        if notes:
            lines.append("")
            lines.extend(f"- {n}" for n in notes)
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


# -- host and versions ------------------------------------------------------------------


def host_info() -> dict[str, Any]:
    """CPU model, usable cores, memory, OS and Python of this machine."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    return {
        "cpu": cpu, "cores": cores, "mem_gb": mem_gb,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "implementation": platform.python_implementation(),
    }


def package_versions(names: Sequence[str]) -> dict[str, str]:
    """Installed versions of `names` (missing ones are left out)."""
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def git_sha(short: bool = True) -> str:
    """The checked-out commit of the repository (with `+dirty` for local changes), or ''."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short" if short else "--verify", "HEAD"],
                             cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                             timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return ""


@contextlib.asynccontextmanager
async def bench_valkey(url: str | None) -> AsyncIterator[tuple[str, bool]]:
    """(`url`, False), or (a private embedded Valkey's URL, True) when no URL is given: a
    private one, which the benchmarks may flush between systems, is stopped after."""
    if url is not None:
        yield url, False
        return
    with tempfile.TemporaryDirectory(prefix="ff-bench-") as tmp:
        embedded = EmbeddedServer(Path(tmp) / "valkey")
        await embedded.start()
        try:
            yield embedded.url, True
        finally:
            await embedded.stop()


async def server_version(client: Any) -> str:
    """`valkey 8.0.1` / `redis 7.0.15` of the server `client` talks to."""
    info = await client.execute("INFO", "server")
    return server_version_from_info(info.decode() if isinstance(info, bytes) else str(info))


def median_rows(runs: list[list[dict[str, Any]]], keep_runs_of: str | None = None
                ) -> list[dict[str, Any]]:
    """Per row position, the median of every numeric figure over the runs (a figure some
    run lacks is taken over the others); `keep_runs_of` also keeps that figure's values."""
    medians = []
    for rows in zip(*runs, strict=True):
        merged = dict(rows[0])
        for key, value in rows[0].items():
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and values:
                merged[key] = statistics.median(values)
        if keep_runs_of:
            merged[f"{keep_runs_of}_runs"] = [r[keep_runs_of] for r in rows]
        medians.append(merged)
    return medians


def server_version_from_info(info: str) -> str:
    """`valkey 8.0.1` / `redis 7.0.15` from INFO server text."""
    fields = dict(line.split(":", 1) for line in info.splitlines()
                  if ":" in line and not line.startswith("#"))
    if "valkey_version" in fields:
        return f"valkey {fields['valkey_version'].strip()}"
    name = fields.get("server_name", "redis").strip() or "redis"
    return f"{name} {fields.get('redis_version', '?').strip()}"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- progress ---------------------------------------------------------------------------


class Progress:
    """A one-line live progress bar on stderr, drawn only when stderr is a terminal.

    Use as `async with progress.track(label, total, done_fn):` inside trio; `done_fn()`
    is polled ten times a second. With `enabled=False` (or no TTY) nothing is drawn.
    """

    def __init__(self, enabled: bool | None = None, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = is_tty if enabled is None else (enabled and is_tty)

    def line(self, label: str, done: int, total: int | None, started: float) -> str:
        elapsed = time.monotonic() - started
        if total:
            frac = min(done / total, 1.0)
            bar = "#" * int(frac * 30)
            speed = done / elapsed if elapsed > 0 else 0.0
            return (f"\r{label:<22} [{bar:<30}] {done:>7}/{total:<7} "
                    f"{speed:>8,.0f}/s {elapsed:6.1f}s")
        return f"\r{label:<22} running {elapsed:6.1f}s"

    @contextlib.asynccontextmanager
    async def track(self, label: str, total: int | None,
                    done_fn: Callable[[], int] | None = None) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        started = time.monotonic()

        async def draw() -> None:
            while True:
                self.stream.write(self.line(label, done_fn() if done_fn else 0, total, started))
                self.stream.flush()
                await trio.sleep(0.1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(draw)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
                final = self.line(label, done_fn() if done_fn else 0, total, started)
                self.stream.write(final + "\n")
                self.stream.flush()

    def message(self, text: str) -> None:
        """A status line (only on a terminal: the report carries everything else)."""
        if self.enabled:
            self.stream.write(text + "\n")
            self.stream.flush()


# -- bounded child processes ------------------------------------------------------------


@dataclass
class ProcessOutcome:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float


def _kill_group(process: trio.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def run_bounded(cmd: Sequence[str], *, timeout: float, env: dict[str, str] | None = None,
                      cwd: Path | None = None) -> ProcessOutcome:
    """Runs `cmd` in a new session; after `timeout` seconds its whole process group (the
    command and every worker it started) gets SIGTERM, then SIGKILL two seconds later."""
    started = time.monotonic()
    timed_out = False
    process = await trio.lowlevel.open_process(
        list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=env, cwd=cwd, start_new_session=True)
    assert process.stdout is not None and process.stderr is not None
    out_parts: list[bytes] = []
    err_parts: list[bytes] = []

    async def collect(stream: trio.abc.ReceiveStream, sink: list[bytes]) -> None:
        async for chunk in stream:
            sink.append(chunk)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect, process.stdout, out_parts)
            nursery.start_soon(collect, process.stderr, err_parts)
            with trio.move_on_after(timeout) as scope:
                await process.wait()
            if scope.cancelled_caught:
                timed_out = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGTERM)
                with trio.move_on_after(2):
                    await process.wait()
            _kill_group(process)  # the command if still alive, and any worker it left behind
            await process.wait()
            # A stray grandchild may hold the pipes open: give the readers two seconds.
            nursery.cancel_scope.deadline = trio.current_time() + 2
    finally:
        if process.returncode is None:
            _kill_group(process)
            with trio.CancelScope(shield=True):
                await process.wait()
    return ProcessOutcome(process.returncode, b"".join(out_parts).decode(errors="replace"),
                          b"".join(err_parts).decode(errors="replace"), timed_out,
                          round(time.monotonic() - started, 2))


def last_json_line(text: str) -> dict[str, Any] | None:
    """The last line of `text` that parses as a JSON object (a child's result line)."""
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
    return None


def tail(text: str, lines: int = 6) -> str:
    """The last few non-empty lines of a child's output, squeezed for a report note."""
    kept = [ln.strip() for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return re.sub(r"\s+", " ", " | ".join(kept))[:600]


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# -- driving a measurement ---------------------------------------------------------------


class Counter:
    """A plain counter that the progress bar can read."""

    def __init__(self) -> None:
        self.value = 0

    def __call__(self) -> int:
        return self.value


async def submit_all(n: int, concurrency: int,
                     submit_one: Callable[[int], Any], counter: Counter | None = None) -> float:
    """Calls `await submit_one(i)` for i in 0..n-1 from `concurrency` tasks (each takes the
    next index when its previous call returned). Returns the wall time in seconds."""
    next_index = 0
    counter = counter or Counter()

    async def lane() -> None:
        nonlocal next_index
        while next_index < n:
            i = next_index
            next_index += 1
            await submit_one(i)
            counter.value += 1

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, n)):
            nursery.start_soon(lane)
    return trio.current_time() - started


async def wait_done(target: int, count: Callable[[], Any], *, timeout: float,
                    interval: float = 0.01, counter: Counter | None = None) -> float:
    """Polls `await count()` every `interval` s until it reaches `target`; returns the
    trio clock time it was first seen there. Raises trio.TooSlowError after `timeout`."""
    with trio.fail_after(timeout):
        while True:
            value = await count()
            if counter is not None:
                counter.value = value
            if value >= target:
                return trio.current_time()
            await trio.sleep(interval)
