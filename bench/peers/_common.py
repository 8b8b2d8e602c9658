"""What every peer program shares; standard library only (it runs in the peers' venvs).

`options()` parses the common flags, `Workers` starts and stops the library's worker
processes (in the peer program's process group, so the harness can kill them all),
`submit_threads`/`submit_async` run the N submissions with bounded concurrency,
`wait_until` polls a done count, `percentiles` is the harness's nearest-rank rule, and
`emit` prints the one JSON result line the harness reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

KIND = "bench_noop"
SYNC_SUBMIT_THREADS = 8  # threads submitting for the synchronous clients (GIL-bound beyond)


def options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--payload-bytes", type=int, default=4096)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 2,
                        help="worker processes (default: one per core)")
    return parser.parse_args(argv)


def payload(size: int) -> str:
    """The same bytes as the harness's first pooled payload (same seed, same rule)."""
    return random.Random(6).randbytes((size + 1) // 2).hex()[:size]


def versions(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    if not samples_ms:
        return {}
    ordered = sorted(samples_ms)
    last = len(ordered) - 1
    return {f"p{round(q * 100)}": round(ordered[round(last * q)], 3) for q in (0.5, 0.95, 0.99)}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Workers:
    """The library's own worker command(s), each a child of this program."""

    def __init__(self, commands: list[list[str]], env: dict[str, str] | None = None) -> None:
        self.commands = commands
        self.env = {**os.environ, **(env or {})}
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        here = os.path.dirname(os.path.abspath(__file__))
        for cmd in self.commands:
            self.procs.append(subprocess.Popen(cmd, cwd=here, env=self.env,
                                               stdin=subprocess.DEVNULL,
                                               stdout=sys.stderr.fileno(),
                                               stderr=sys.stderr.fileno()))
        return self

    def check(self) -> None:
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"worker exited early with code {p.returncode}: {p.args}")

    def __exit__(self, *exc: object) -> None:
        """SIGTERM to each worker command, SIGKILL after 15 s, then SIGKILL to anything
        they forked that is still there (pool children outliving their parent)."""
        family = [pid for p in self.procs for pid in descendants(p.pid)]
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.procs:
            try:
                p.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for pid in family:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; empty elsewhere)."""
    out: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for child in map(int, children):
        out.append(child)
        out.extend(descendants(child))
    return out


def wait_until(count: Callable[[], int], target: int, timeout: float, *,
               interval: float = 0.02, workers: Workers | None = None) -> float:
    """Polls `count()` until it reaches `target`; returns time.monotonic() at that moment.
    Raises TimeoutError (with the last count) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = 0
    while True:
        value = count()
        if value >= target:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{value}/{target} done after {timeout}s")
        if workers is not None:
            workers.check()
        time.sleep(interval)


def submit_threads(n: int, concurrency: int, submit_one: Callable[[int], Any]) -> float:
    """Calls `submit_one(i)` for every i from a pool of threads; returns the wall time."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(concurrency, SYNC_SUBMIT_THREADS)) as pool:
        for _ in pool.map(submit_one, range(n)):
            pass
    return time.monotonic() - started


async def submit_async(n: int, concurrency: int,
                       submit_one: Callable[[int], Awaitable[Any]]) -> float:
    """`concurrency` asyncio tasks calling `await submit_one(i)`; returns the wall time."""
    started = time.monotonic()
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < n:
            i = next_index
            next_index += 1
            await submit_one(i)

    await asyncio.gather(*(lane() for _ in range(min(concurrency, n))))
    return time.monotonic() - started


class Background:
    """Runs `fn` on a thread and keeps its result (or exception) for `join()`."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

        def body() -> None:
            try:
                self.value = fn()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=body, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def result(system: str, args: argparse.Namespace, *, submit_s: float | None, e2e_s: float | None,
           completed: int, verified: bool, latency_ms: dict[str, float] | None = None,
           latency_source: str = "", config: dict[str, Any] | None = None,
           versions_: dict[str, str] | None = None, notes: list[str] | None = None,
           status: str = "ok") -> dict[str, Any]:
    def per_s(seconds: float | None) -> float | None:
        return round(args.n / seconds, 1) if seconds else None

    return {
        "system": system, "status": status if verified or status != "ok" else "failed",
        "n": args.n, "e2e_rate": per_s(e2e_s), "submit_rate": per_s(submit_s),
        "latency_ms": latency_ms or {}, "latency_source": latency_source,
        "verified": verified, "completed": completed,
        "seconds": {k: round(v, 3) for k, v in (("submit", submit_s), ("e2e", e2e_s)) if v},
        "config": config or {}, "versions": versions_ or {}, "notes": notes or [],
    }


def emit(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


async def drive_async(args: argparse.Namespace, submit_one: Callable[[int], Awaitable[Any]],
                      done_count: Callable[[], Awaitable[int]], *,
                      interval: float = 0.02) -> tuple[float, float]:
    """Submits N (bounded concurrency) while polling `done_count()`; returns
    (submit seconds, end-to-end seconds: first submit -> all N seen done)."""
    started = time.monotonic()
    submitting = asyncio.ensure_future(submit_async(args.n, args.concurrency, submit_one))
    deadline = started + args.timeout
    while True:
        if submitting.done() and submitting.exception() is not None:
            raise submitting.exception()  # type: ignore[misc]
        value = await done_count()
        if value >= args.n:
            ended = time.monotonic()
            break
        if time.monotonic() > deadline:
            submitting.cancel()
            raise TimeoutError(f"{value}/{args.n} done after {args.timeout}s")
        await asyncio.sleep(interval)
    return await submitting, ended - started


def drive_threads(args: argparse.Namespace, submit_one: Callable[[int], Any],
                  done_count: Callable[[], int], *, workers: Workers | None = None,
                  interval: float = 0.02) -> tuple[float, float]:
    """The same for synchronous clients: submitter threads plus a polling main thread."""
    started = time.monotonic()
    submitting = Background(lambda: submit_threads(args.n, args.concurrency, submit_one))
    ended = wait_until(done_count, args.n, args.timeout, interval=interval, workers=workers)
    return submitting.join(), ended - started


def run_main(body: Callable[[argparse.Namespace], dict[str, Any]], system: str) -> None:
    """Runs a peer program's body; a failure still prints a result line."""
    args = options()
    try:
        data = body(args)
    except Exception as exc:  # reported, not raised: the harness reads our stdout
        log(f"{system} failed: {exc!r}")
        data = result(system, args, submit_s=None, e2e_s=None, completed=0, verified=False,
                      status="timeout" if isinstance(exc, TimeoutError) else "failed",
                      notes=[f"{type(exc).__name__}: {exc}"[:400]])
    emit(data)


class RemainingIds:
    """Counts done jobs by asking about the oldest not-yet-done ids only (the library's
    own per-job record, checked `window` at a time), so a poll stays cheap at any N."""

    def __init__(self, check: Callable[[list[str]], Awaitable[list[bool]]],
                 window: int = 500) -> None:
        self.check = check
        self.window = window
        self.pending: list[str] = []
        self.done = 0

    def add(self, job_id: str) -> None:
        self.pending.append(job_id)

    async def count(self) -> int:
        head = self.pending[: self.window]
        if head:
            flags = await self.check(head)
            left = [job_id for job_id, ok in zip(head, flags, strict=True) if not ok]
            self.done += len(head) - len(left)
            self.pending[: len(head)] = left
        return self.done
