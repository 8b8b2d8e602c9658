"""Consumers in separate processes (`ff bench --procs P`): the child program and its parent.

Child: `python -m bench.procs ROLE --url U --workers K --ready-key R --go-key G ...` connects
K consumers (ff Workers for role `ff`, BLMPOP loops for role `baseline`), pushes one token on
R when connected, blocks on G until the parent says go, then consumes until SIGTERM, and
prints one JSON line `{"handled": n, "duplicates": d}` on the way out.

Parent: `ProcGroup` starts the children, waits for every ready token, releases them with
`go()` and stops them with SIGTERM (SIGKILL after a grace period). What must not live here:
timing and verification (the scenario modules).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import trio

from bench.harness import REPO_ROOT, last_json_line

KIND = "bench.scenario1"


# -- child ------------------------------------------------------------------------------


class _Tally:
    def __init__(self) -> None:
        self.seen: set[bytes | str] = set()
        self.handled = 0
        self.duplicates = 0

    def add(self, key: bytes | str) -> None:
        self.handled += 1
        if key in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(key)


async def _ff_child(args: argparse.Namespace, tally: _Tally, go: trio.Event,
                    stop: trio.Event) -> None:
    from contextlib import AsyncExitStack

    from ff.worker import Worker

    workers: list[Worker] = []
    async with AsyncExitStack() as stack:
        for i in range(args.workers):
            worker = Worker(args.url, worker_id=f"bench-{os.getpid()}-{i}", lanes=[args.lane],
                            max_concurrent=args.max_concurrent, lease_ttl_ms=30_000,
                            grace_period_s=5.0)

            @worker.handler(KIND)
            async def handle(task: Any, payload: Any) -> None:
                tally.add(task.execution_id)

            await stack.enter_async_context(worker)
            workers.append(worker)
        await _ready(args)
        await go.wait()
        async with trio.open_nursery() as nursery:
            for worker in workers:
                nursery.start_soon(lambda w=worker: w.run(handle_signals=False))
            await stop.wait()
            for worker in workers:
                worker.stop()


async def _baseline_child(args: argparse.Namespace, tally: _Tally, go: trio.Event,
                          stop: trio.Event) -> None:
    from bench.baseline import consume
    from ff.resp import Client

    async with Client.from_url(args.url) as client, trio.open_nursery() as nursery:
        started = 0

        async def one() -> None:
            nonlocal started
            async with client.dedicated() as conn:
                started += 1
                await consume(conn, client, args.queue, args.results, go, tally.add)

        for _ in range(args.workers):
            nursery.start_soon(one)
        while started < args.workers:
            await trio.sleep(0.005)
        await _ready(args)
        await stop.wait()
        nursery.cancel_scope.cancel()


async def _ready(args: argparse.Namespace) -> None:
    from ff.resp import Client

    async with Client.from_url(args.url) as client:
        await client.execute("LPUSH", args.ready_key, os.getpid())


class _LogTally(logging.Handler):
    """Counts this child's warnings by logger and message (reported, not printed)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        key = f"{record.name}: {record.getMessage()[:80]}"
        self.counts[key] = self.counts.get(key, 0) + 1


async def _child_main(args: argparse.Namespace) -> None:
    from ff.resp import Client

    logs = _LogTally()
    logging.getLogger().handlers[:] = [logs]
    logging.getLogger().setLevel(logging.WARNING)
    tally = _Tally()
    go = trio.Event()
    stop = trio.Event()

    async def wait_go() -> None:
        async with Client.from_url(args.url) as client, client.dedicated() as conn:
            while not await conn.execute("BLPOP", args.go_key, 1, timeout=5):
                pass
        go.set()

    async def watch_signals() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                stop.set()
                return

    role = _ff_child if args.role == "ff" else _baseline_child
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_signals)
        nursery.start_soon(wait_go)
        await role(args, tally, go, stop)
        nursery.cancel_scope.cancel()
    print(json.dumps({"handled": tally.handled, "duplicates": tally.duplicates,
                      "warnings": logs.counts}), flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.procs")
    parser.add_argument("role", choices=("ff", "baseline"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--max-concurrent", type=int, default=1)
    parser.add_argument("--ready-key", required=True)
    parser.add_argument("--go-key", required=True)
    parser.add_argument("--lane", default="bench")
    parser.add_argument("--queue", default="")
    parser.add_argument("--results", default="")
    trio.run(_child_main, parser.parse_args(argv))


# -- parent -----------------------------------------------------------------------------


class ProcGroup:
    """Child consumer processes for one measurement.

        group = ProcGroup(url, "ff", [8, 8], ["--lane", "bench-e2e"])
        await group.start(client)      # returns once every child is connected
        await group.go(client)         # children start consuming
        totals = await group.stop()    # SIGTERM, collect their tallies
    """

    def __init__(self, url: str, role: str, split: Sequence[int], extra: Sequence[str] = (),
                 max_concurrent: int = 1) -> None:
        self.url = url
        self.role = role
        self.split = list(split)
        self.extra = list(extra)
        self.max_concurrent = max_concurrent
        tag = uuid.uuid4().hex[:8]
        self.ready_key = f"bench:procs:{tag}:ready"
        self.go_key = f"bench:procs:{tag}:go"
        self.processes: list[trio.Process] = []
        self.outputs: list[bytes] = []

    async def start(self, client: Any, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          env.get("PYTHONPATH", "")]))
        for workers in self.split:
            cmd = [sys.executable, "-m", "bench.procs", self.role, "--url", self.url,
                   "--workers", str(workers), "--max-concurrent", str(self.max_concurrent),
                   "--ready-key", self.ready_key, "--go-key", self.go_key, *self.extra]
            self.processes.append(await trio.lowlevel.open_process(
                cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT))
        deadline = time.monotonic() + timeout
        ready = 0
        while ready < len(self.processes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.role} consumer processes not ready in {timeout}s")
            if any(p.poll() is not None for p in self.processes):
                raise RuntimeError(f"a {self.role} consumer process exited during start")
            if await client.execute("RPOP", self.ready_key) is not None:
                ready += 1
            else:
                await trio.sleep(0.02)

    async def go(self, client: Any) -> None:
        await client.execute("LPUSH", self.go_key, *(["go"] * len(self.processes)))

    async def stop(self, grace: float = 15.0) -> dict[str, Any]:
        """SIGTERM every child, wait (SIGKILL after `grace`), sum their tallies."""
        for p in self.processes:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        totals: dict[str, Any] = {"handled": 0, "duplicates": 0, "lost_children": 0,
                                  "warnings": {}}
        for p in self.processes:
            assert p.stdout is not None
            out = b""
            with trio.move_on_after(grace):
                async for chunk in p.stdout:
                    out += chunk
                await p.wait()
            if p.returncode is None:
                p.kill()
                await p.wait()
            data = last_json_line(out.decode(errors="replace"))
            if data is None:
                totals["lost_children"] += 1
                continue
            totals["handled"] += int(data.get("handled", 0))
            totals["duplicates"] += int(data.get("duplicates", 0))
            for key, count in (data.get("warnings") or {}).items():
                totals["warnings"][key] = totals["warnings"].get(key, 0) + count
        return totals

    async def kill(self) -> None:
        for p in self.processes:
            if p.returncode is None:
                p.kill()
                await p.wait()


if __name__ == "__main__":
    main()
