"""Scenario 1: submit -> claim -> complete, N executions through the whole of ff.

An in-process `Server` (scanners on) serves the real HTTP API (`ff.http.routes.build_app`) on
a loopback port. Submitters `POST /v1/executions` (kind `bench.scenario1`, a 4 KiB payload,
`payload_encoding` binary) with bounded concurrency over keep-alive connections (or, with
`--submit direct`, call `Server.create_execution` in-process: a diagnostic without HTTP;
`--submit batch`: `POST /v1/executions:batch` with BATCH_SIZE items per request;
`--submit producer`: the direct producer `ff.Client.create_executions`, same batches); W
`ff.worker.Worker`s (max_concurrent 1 each by default, lease 30 s, the SDK's own claim loop:
scheduler grant -> claim -> handler -> complete) drain them, in this process or in `--procs`
child processes.

Two measurements, each on its own lane:
- phased (the reference's method): seed N, then start the workers; submit rate = N / seed
  wall time, drain rate = N / time from releasing the workers to the last completion;
- end-to-end: workers connected and claiming, then N submitted; e2e rate = N / time from the
  first submit to the last completion, and per-task latency = `completed_at - created_at`
  read from each execution's core record (Valkey server clock, ms resolution).

With `admitted=True` (system `ff+admission`, `ff bench --admission`) every execution carries
one budget (a `tokens` dimension, hard limit far above what the run uses) and one quota
policy (1,000,000 per 1 s window, 100,000 at once), so every claim goes through budget and
quota admission and every completion gives its quota slot back, without anything being held.

Completion is watched with ZCARD of the lane's terminal index. Verification: every execution
is `completed` with `total_attempt_count` 1, and the handler ran exactly N times on N
distinct ids.
"""

from __future__ import annotations

import secrets
import uuid
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import trio

from bench.harness import (
    CORE_PACKAGES,
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
from bench.procs import KIND, ProcGroup
from ff.client import HttpClient, HttpError
from ff.config import ServerConfig
from ff.core.budget_records import CreateBudgetArgs, CreateQuotaPolicyArgs
from ff.core.ids import ExecutionId
from ff.core.keys import ExecKeys, IndexKeys
from ff.core.policy import ExecutionPolicy
from ff.core.records import CreateExecutionArgs, CreateResult
from ff.http import serve_http
from ff.http.routes import build_app
from ff.producer import Client
from ff.server import Server
from ff.worker import Worker

SYSTEM = "ff"
ADMITTED_SYSTEM = "ff+admission"
BATCH_SIZE = 100  # executions per request with --submit batch / producer
BATCH_CONCURRENCY = 4  # batch requests in flight
SUBMIT_DESCRIPTIONS = {
    "http": "HTTP POST /v1/executions, keep-alive",
    "direct": "in-process Server.create_execution (no HTTP)",
    "batch": f"HTTP POST /v1/executions:batch, {BATCH_SIZE} per request, "
             f"{BATCH_CONCURRENCY} in flight",
    "producer": f"ff.Client.connect(valkey).create_executions, {BATCH_SIZE} per call, "
                f"{BATCH_CONCURRENCY} in flight",
}
CORE_FIELDS = ("public_state", "total_attempt_count", "created_at", "completed_at")


class _Created(msgspec.Struct):
    execution_id: str


class _CreateReply(msgspec.Struct):
    Created: _Created | None = None


class _BatchReply(msgspec.Struct):
    results: list[_CreateReply]


class _Tally:
    """Handler invocations in this process."""

    def __init__(self) -> None:
        self.handled = 0
        self.duplicates = 0
        self._seen: set[str] = set()

    def add(self, eid: str) -> None:
        self.handled += 1
        if eid in self._seen:
            self.duplicates += 1
        self._seen.add(eid)


class _Workers:
    """W ff Workers on one lane, in this process or in child processes."""

    def __init__(self, url: str, client: Any, cfg: RunConfig, lane: str) -> None:
        self.url, self.client, self.cfg, self.lane = url, client, cfg, lane
        self.tally = _Tally()
        self.stop = trio.Event()
        self.warnings: dict[str, int] = {}

    async def run(self, go: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
        """Connect every worker, report started, claim after `go` until cancelled."""
        if self.cfg.procs:
            group = ProcGroup(self.url, "ff", self.cfg.worker_split(), ["--lane", self.lane],
                              max_concurrent=self.cfg.worker_concurrency)
            try:
                await group.start(self.client)
                task_status.started()
                await go.wait()
                await group.go(self.client)
                await self.stop.wait()
            finally:
                with trio.CancelScope(shield=True):
                    totals = await group.stop()
                self.tally.handled += totals["handled"]
                self.tally.duplicates += totals["duplicates"]
                self.warnings = totals["warnings"]
            return
        async with AsyncExitStack() as stack:
            workers = []
            for i in range(self.cfg.workers):
                worker = Worker(self.url, worker_id=f"bench-{i}", lanes=[self.lane],
                                max_concurrent=self.cfg.worker_concurrency,
                                lease_ttl_ms=30_000, grace_period_s=5.0)
                worker.handler(KIND)(self._handle)
                workers.append(await stack.enter_async_context(worker))
            task_status.started()
            await go.wait()
            async with trio.open_nursery() as nursery:
                for worker in workers:
                    nursery.start_soon(lambda w=worker: w.run(handle_signals=False))
                await self.stop.wait()
                for worker in workers:
                    worker.stop()

    async def _handle(self, task: Any, payload: Any) -> None:
        self.tally.add(task.execution_id)


async def run(url: str, cfg: RunConfig, progress: Progress | None = None, *,
              admitted: bool = False) -> SystemResult:
    """Both measurements of scenario 1 against the Valkey at `url`."""
    progress = progress or Progress(enabled=False)
    result = SystemResult(
        ADMITTED_SYSTEM if admitted else SYSTEM, n=cfg.n, versions=package_versions(CORE_PACKAGES),
        latency_source="execution core created_at -> completed_at (Valkey server clock, ms)")
    result.config = {"workers": cfg.workers, "procs": cfg.procs,
                     "max_concurrent": cfg.worker_concurrency,
                     "lease_ttl_ms": 30_000, "submit_concurrency": cfg.submit_concurrency,
                     "spread": cfg.spread,
                     "submit": SUBMIT_DESCRIPTIONS[cfg.submit]}
    tag = uuid.uuid4().hex[:8]
    lanes = (f"bench-seed-{tag}", f"bench-e2e-{tag}")
    config = ServerConfig(valkey_url=url, waitpoint_hmac_secret=secrets.token_hex(32),
                          lanes=lanes, listen_host="127.0.0.1", listen_port=0)
    payloads = payload_pool(cfg.payload_bytes)
    async with (Server.running(config) as server, Client.connect(url) as producer,
                trio.open_nursery() as nursery):
        policy = await _admission_policy(server) if admitted else None
        if policy is not None:
            result.config["policy"] = msgspec.to_builtins(policy)
        port = await nursery.start(serve_http, build_app(server), "127.0.0.1", 0)
        async with HttpClient(f"http://127.0.0.1:{port}",
                              max_connections=cfg.submit_concurrency) as http:
            if cfg.phased:
                seconds = await _measure(server, producer, http, url, cfg, lanes[0],
                                         payloads, progress, result, phased=True,
                                         policy=policy)
                result.submit_rate = rate(cfg.n, seconds.get("submit"))
                result.drain_rate = rate(cfg.n, seconds.get("drain"))
            if result.status == "ok":
                seconds = await _measure(server, producer, http, url, cfg, lanes[1],
                                         payloads, progress, result, phased=False,
                                         policy=policy)
                result.e2e_rate = rate(cfg.n, seconds.get("e2e"))
                if not cfg.phased:
                    result.submit_rate = rate(cfg.n, seconds.get("submit"))
        nursery.cancel_scope.cancel()
    return result


async def _admission_policy(server: Server) -> ExecutionPolicy:
    """One budget and one quota that admit everything the run submits."""
    budget = await server.create_budget(CreateBudgetArgs(
        dimensions=["tokens"], hard_limits=[10**15], soft_limits=[0]))
    quota = await server.create_quota_policy(CreateQuotaPolicyArgs(
        window_seconds=1, max_requests_per_window=1_000_000, max_concurrent=100_000))
    assert budget.Created is not None and quota.Created is not None
    return ExecutionPolicy(budget_ids=[budget.Created.budget_id],
                           quota_policy_id=quota.Created.quota_policy_id)


async def _measure(server: Server, producer: Client, http: HttpClient, url: str,
                   cfg: RunConfig, lane: str, payloads: list[str], progress: Progress,
                   result: SystemResult, *, phased: bool,
                   policy: ExecutionPolicy | None) -> dict[str, float]:
    n = cfg.n
    name = "phased" if phased else "e2e"
    nparts = server.partition_config.num_flow_partitions
    client = server.client
    ids: list[str] = [""] * n
    if cfg.spread == "partitions":
        ids = [str(ExecutionId.mint(i % nparts)) for i in range(n)]
        partitions = sorted({ExecutionId.parse(e).partition for e in ids})
    else:
        config = server.partition_config
        partitions = sorted({p % nparts for p in config.lane_partitions(
            lane, server.config.lane_spread)})
    terminal_keys = [IndexKeys(p).lane(lane, "terminal") for p in partitions]
    interval = max(0.01, 0.0004 * len(terminal_keys))
    failures: list[str] = []

    async def submit_direct(i: int) -> None:
        created = await server.create_execution(CreateExecutionArgs(
            execution_kind=KIND, lane_id=lane, input_payload=payloads[i % len(payloads)],
            payload_encoding="binary", execution_id=ids[i] or None, policy=policy))
        ids[i] = created.execution_id

    def batch_items(c: int) -> range:
        return range(c * BATCH_SIZE, min((c + 1) * BATCH_SIZE, n))

    async def submit_producer(c: int) -> None:
        results = await producer.create_executions([
            CreateExecutionArgs(execution_kind=KIND, lane_id=lane,
                                input_payload=payloads[i % len(payloads)],
                                payload_encoding="binary", execution_id=ids[i] or None,
                                policy=policy)
            for i in batch_items(c)])
        for i, created in zip(batch_items(c), results, strict=True):
            if isinstance(created, CreateResult):
                ids[i] = created.execution_id
            else:
                failures.append(repr(created))

    async def submit_batch(c: int) -> None:
        body = [{"execution_kind": KIND, "lane_id": lane,
                 "input_payload": payloads[i % len(payloads)], "payload_encoding": "binary",
                 **({"execution_id": ids[i]} if ids[i] else {}),
                 **({"policy": policy} if policy is not None else {})}
                for i in batch_items(c)]
        try:
            response = await http.request("POST", "/v1/executions:batch", json=body)
        except HttpError as exc:
            failures.append(repr(exc))
            return
        if response.status != 200:
            failures.append(f"{response.status} {response.body[:120]!r}")
            return
        for i, item in zip(batch_items(c), response.json(_BatchReply).results, strict=True):
            if item.Created is not None:
                ids[i] = item.Created.execution_id
            else:
                failures.append(repr(item))

    async def submit_one(i: int) -> None:
        if cfg.submit == "direct":
            return await submit_direct(i)
        if cfg.submit == "batch":
            return await submit_batch(i)
        if cfg.submit == "producer":
            return await submit_producer(i)
        body: dict[str, Any] = {"execution_kind": KIND, "lane_id": lane,
                                "input_payload": payloads[i % len(payloads)],
                                "payload_encoding": "binary"}
        if ids[i]:
            body["execution_id"] = ids[i]
        if policy is not None:
            body["policy"] = policy
        try:
            response = await http.request("POST", "/v1/executions", json=body)
        except HttpError as exc:
            failures.append(repr(exc))
            return
        if response.status not in (200, 201):
            failures.append(f"{response.status} {response.body[:120]!r}")
            return
        created = response.json(_CreateReply).Created
        if created is not None:
            ids[i] = created.execution_id

    async def count() -> int:
        if len(terminal_keys) == 1:
            return int(await client.execute("ZCARD", terminal_keys[0]))
        pipe = client.pipeline()
        for key in terminal_keys:
            pipe.execute_command("ZCARD", key)
        return sum(int(x) for x in await pipe.run(raise_on_error=True))

    batched = cfg.submit in ("batch", "producer")
    calls = -(-n // BATCH_SIZE) if batched else n  # submit_one(i) per request or call
    concurrency = BATCH_CONCURRENCY if batched else cfg.submit_concurrency
    workers = _Workers(url, client, cfg, lane)
    go = trio.Event()
    submitted, done = Counter(), Counter()
    seconds: dict[str, float] = {}
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(workers.run, go)
            if phased:
                async with progress.track(f"ff seed ({cfg.submit})", n, submitted):
                    seconds["submit"] = await submit_all(calls, concurrency, submit_one,
                                                         submitted)
                if failures:
                    raise _SubmitFailed
                async with progress.track("ff drain", n, done):
                    t0 = trio.current_time()
                    go.set()
                    seconds["drain"] = await wait_done(n, count, timeout=cfg.timeout,
                                                       interval=interval, counter=done) - t0
            else:
                go.set()
                async with progress.track("ff e2e", n, done):
                    t0 = trio.current_time()
                    nursery.start_soon(_timed_submit, calls, concurrency, submit_one, submitted,
                                       seconds)
                    seconds["e2e"] = await wait_done(n, count, timeout=cfg.timeout,
                                                     interval=interval, counter=done) - t0
            workers.stop.set()  # the workers drain and disconnect; the nursery then ends
    except* trio.TooSlowError:
        result.status = "timeout"
        result.notes.append(f"{name}: not drained within {cfg.timeout}s "
                            f"({done.value}/{n} completed)")
    except* _SubmitFailed:
        result.status = "failed"
    finally:
        result.seconds.update({f"{name}_{k}": round(v, 3) for k, v in seconds.items()})
    for key, count in sorted(workers.warnings.items(), key=lambda kv: -kv[1])[:3]:
        result.notes.append(f"{name}: worker processes logged {count}x '{key}'")
    if failures:
        result.status = "failed"
        result.notes.append(f"{name}: {len(failures)} submissions refused, first: "
                            f"{failures[0]}")
    if result.status != "ok":
        return seconds
    await _verify(client, cfg, ids, workers.tally, result, name=name, latency=not phased)
    return seconds


class _SubmitFailed(Exception):
    pass


async def _timed_submit(calls: int, concurrency: int, submit_one: Any, counter: Counter,
                        seconds: dict[str, float]) -> None:
    seconds["submit"] = await submit_all(calls, concurrency, submit_one, counter)


async def _verify(client: Any, cfg: RunConfig, ids: list[str], tally: _Tally,
                  result: SystemResult, *, name: str, latency: bool) -> None:
    """Every execution completed, in exactly one attempt, handled exactly once.
    `result.verified` ends True only when every measurement of the run passed."""
    completed = 0
    bad: list[str] = []
    samples: list[float] = []
    for start in range(0, len(ids), 1000):
        pipe = client.pipeline()
        chunk = [eid for eid in ids[start:start + 1000] if eid]
        for eid in chunk:
            pipe.execute_command("HMGET", ExecKeys(eid).core, *CORE_FIELDS)
        for eid, row in zip(chunk, await pipe.run(raise_on_error=True), strict=True):
            state, attempts, created, finished = (v.decode() if v else "" for v in row)
            if state == "completed" and attempts == "1":
                completed += 1
                if latency and created and finished:
                    samples.append(float(int(finished) - int(created)))
            elif len(bad) < 3:
                bad.append(f"{eid} state={state!r} attempts={attempts!r}")
    ok = (completed == cfg.n and tally.handled == cfg.n and tally.duplicates == 0
          and all(ids))
    result.completed = completed
    result.verified = ok and (result.verified or name == "phased" or not cfg.phased)
    if not ok:
        result.status = "failed"
        result.notes.append(
            f"{name}: {completed}/{cfg.n} completed in one attempt, handler ran "
            f"{tally.handled} times ({tally.duplicates} duplicates)"
            + (f"; e.g. {'; '.join(bad)}" if bad else ""))
    if latency:
        result.latency_ms = percentiles(samples)
