"""The raw-Valkey baseline: the same N jobs as scenario 1, through ff.resp and nothing else.

Producers `LPUSH` one item per job (`<seq>:<sent_ns>:<payload>`) with the same bounded
concurrency as the HTTP submitters; W consumers each hold a dedicated connection, take one
job per `BLMPOP ... RIGHT COUNT 1` (FIFO) and `HSET` a result (`<sent_ns>:<done_ns>`) on the
shared, auto-pipelined pool. That is the least any Valkey-backed queue must do per job (one
write to enqueue, one pop, one write to record the outcome), so its rate is the ceiling for
ff and for every peer. No leases, no retries, no state machine.

Two measurements, like scenario 1: phased (seed N, then drain) and end-to-end (consumers
running, N submitted). Latency is client-side wall clock (sent -> result written).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import trio

from bench.harness import (
    Counter,
    Progress,
    RunConfig,
    SystemResult,
    package_versions,
    payload_pool,
    percentiles,
    rate,
    submit_all,
    wait_done,
)
from bench.procs import ProcGroup
from ff.resp import Client

SYSTEM = "valkey-baseline"


async def consume(conn: Any, client: Client, queue: str, results: str, go: trio.Event,
                  seen: Callable[[bytes], None]) -> None:
    """One consumer: pop one job at a time, record its result, until cancelled."""
    await go.wait()
    while True:
        reply = await conn.execute("BLMPOP", 1, 1, queue, "RIGHT", "COUNT", 1, timeout=5)
        if not reply:
            continue
        item = reply[1][0]
        seq, sent, _payload = item.split(b":", 2)
        seen(seq)
        await client.execute("HSET", results, seq, b"%s:%d" % (sent, time.time_ns()))


class _Consumers:
    """W consumers, in this process (trio tasks) or in `procs` child processes."""

    def __init__(self, url: str, client: Client, cfg: RunConfig, queue: str,
                 results: str) -> None:
        self.url, self.client, self.cfg = url, client, cfg
        self.queue, self.results = queue, results
        self.handled = 0
        self.duplicates = 0
        self.warnings: dict[str, int] = {}
        self._seen: set[bytes] = set()

    def _see(self, seq: bytes) -> None:
        self.handled += 1
        if seq in self._seen:
            self.duplicates += 1
        self._seen.add(seq)

    async def run(self, go: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        """Connects, reports started, consumes after `go` until cancelled."""
        if self.cfg.procs:
            group = ProcGroup(self.url, "baseline", self.cfg.worker_split(self.cfg.slots),
                              ["--queue", self.queue, "--results", self.results])
            try:
                await group.start(self.client)
                task_status.started()
                await go.wait()
                await group.go(self.client)
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    totals = await group.stop()
                self.handled += totals["handled"]
                self.duplicates += totals["duplicates"]
                self.warnings = totals["warnings"]
            return
        async with AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(self.client.dedicated())
                     for _ in range(self.cfg.slots)]
            async with trio.open_nursery() as nursery:
                for conn in conns:
                    nursery.start_soon(consume, conn, self.client, self.queue, self.results,
                                       go, self._see)
                task_status.started()


async def run(url: str, cfg: RunConfig, progress: Progress | None = None) -> SystemResult:
    """Both measurements of the baseline against the Valkey at `url`."""
    progress = progress or Progress(enabled=False)
    result = SystemResult(SYSTEM, n=cfg.n, latency_source="client wall clock: LPUSH sent -> "
                          "HSET result sent (time.time_ns)",
                          versions=package_versions(("flowfabric", "trio", "hiredis")))
    result.config = {"consumers": cfg.slots, "procs": cfg.procs,
                     "pop": "BLMPOP RIGHT COUNT 1", "submit_concurrency": cfg.submit_concurrency}
    payloads = [p.encode() for p in payload_pool(cfg.payload_bytes)]
    tag = uuid.uuid4().hex[:8]
    async with Client.from_url(url, pool_size=4) as client:
        if cfg.phased:
            seconds = await _measure(url, client, cfg, payloads, f"bench:base:{tag}:seed",
                                     progress, phased=True, result=result)
            result.submit_rate = rate(cfg.n, seconds.get("submit"))
            result.drain_rate = rate(cfg.n, seconds.get("drain"))
        if result.status == "ok":
            seconds = await _measure(url, client, cfg, payloads, f"bench:base:{tag}:e2e",
                                     progress, phased=False, result=result)
            result.e2e_rate = rate(cfg.n, seconds.get("e2e"))
            if not cfg.phased:
                result.submit_rate = rate(cfg.n, seconds.get("submit"))
    return result


async def _measure(url: str, client: Client, cfg: RunConfig, payloads: list[bytes],
                   prefix: str, progress: Progress, *, phased: bool,
                   result: SystemResult) -> dict[str, float]:
    queue, results = f"{prefix}:queue", f"{prefix}:results"
    consumers = _Consumers(url, client, cfg, queue, results)
    go = trio.Event()
    n = cfg.n
    submitted, done = Counter(), Counter()

    async def submit_one(i: int) -> None:
        item = b"%d:%d:" % (i, time.time_ns()) + payloads[i % len(payloads)]
        await client.execute("LPUSH", queue, item)

    async def count() -> int:
        return int(await client.execute("HLEN", results))

    seconds: dict[str, float] = {}
    name = "phased" if phased else "e2e"
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(consumers.run, go)
            if phased:
                async with progress.track("baseline seed", n, submitted):
                    seconds["submit"] = await submit_all(n, cfg.submit_concurrency, submit_one,
                                                         submitted)
                async with progress.track("baseline drain", n, done):
                    t0 = trio.current_time()
                    go.set()
                    seconds["drain"] = await wait_done(n, count, timeout=cfg.timeout,
                                                       counter=done) - t0
            else:
                go.set()
                async with progress.track("baseline e2e", n, done):
                    t0 = trio.current_time()
                    nursery.start_soon(_submit_timed, n, cfg, submit_one, submitted, seconds)
                    seconds["e2e"] = await wait_done(n, count, timeout=cfg.timeout,
                                                     counter=done) - t0
            nursery.cancel_scope.cancel()
    except* trio.TooSlowError:
        result.status = "timeout"
        result.notes.append(f"{name}: not drained within {cfg.timeout}s")
    finally:
        result.seconds.update({f"{name}_{k}": round(v, 3) for k, v in seconds.items()})
    if result.status != "ok":
        return seconds
    await _verify(client, cfg, results, consumers, result, latency=not phased, name=name)
    await client.execute("DEL", queue, results)
    return seconds


async def _submit_timed(n: int, cfg: RunConfig, submit_one: Callable[[int], Any],
                        counter: Counter, seconds: dict[str, float]) -> None:
    seconds["submit"] = await submit_all(n, cfg.submit_concurrency, submit_one, counter)


async def _verify(client: Client, cfg: RunConfig, results: str, consumers: _Consumers,
                  result: SystemResult, *, latency: bool, name: str) -> None:
    """Every job has exactly one result and was popped exactly once. `result.verified`
    ends True only when every measurement of the run passed."""
    raw = await client.execute("HGETALL", results)
    seqs = {int(k) for k in raw}
    complete = seqs == set(range(cfg.n))
    once = consumers.handled == cfg.n and consumers.duplicates == 0
    ok = complete and once
    result.completed = len(seqs)
    result.verified = ok and (result.verified or name == "phased" or not cfg.phased)
    if not ok:
        result.status = "failed"
        result.notes.append(f"{name}: {len(seqs)} results, {consumers.handled} pops, "
                            f"{consumers.duplicates} duplicates (expected {cfg.n} each, 0)")
    if latency:
        samples = []
        for value in raw.values():
            sent, done = value.split(b":")
            samples.append((int(done) - int(sent)) / 1e6)
        result.latency_ms = percentiles(samples)
