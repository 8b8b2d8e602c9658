"""Flow benchmarks, each beside a raw-Valkey baseline measured in the same run.

scenario4: linear 10-node flows (the reference's method): `--flows` flows built over HTTP
with the DAG builder while `--workers` echo workers run (direct to Valkey, as ff workers
do); throughput = flows / wall time (first submit -> last node completed), per-stage
latency = next node's started_at minus the previous node's completed_at (Valkey clock).
Measured twice: the server in the harness process, and `ff serve` in a process of its own
(the reference's shape). Baseline: the same chains through one Valkey list (a worker pops
a node, marks it done and pushes the next).

scenario6: quorum cancel fan-out: a flow of n upstreams and one downstream joined any_of
with cancel_remaining; timed from the completion of upstream 0 until every other upstream
is cancelled (the lane's terminal index holds all n). Baseline: a PUBLISH heard by a
subscriber that then marks n hashes cancelled (pipelined HSET).
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import trio

from bench.harness import (
    REPO_ROOT,
    bench_valkey,
    git_sha,
    host_info,
    median_rows,
    server_version,
    utc_now,
)
from bench.procs import KIND
from ff.client import ApiClient, HttpError
from ff.config import ServerConfig
from ff.core.flow_records import (
    AddExecutionToFlowArgs,
    ApplyDependencyToChildArgs,
    CreateFlowArgs,
    EdgeGroupPolicyArgs,
    StageDependencyEdgeArgs,
)
from ff.core.ids import ExecutionId
from ff.core.keys import ExecKeys, IndexKeys
from ff.core.partitions import PartitionConfig
from ff.core.records import CreateExecutionArgs
from ff.dag import Flow
from ff.embedded import free_loopback_port
from ff.http import build_app, serve_http
from ff.resp import Client
from ff.scheduler import Scheduler, lease_from_grant
from ff.script import execution as execution_fns
from ff.script.library import FunctionLibrary
from ff.server import Server

SECRET = "cd" * 32
TARGETS = {
    "scenario4": "Reference: 17.46 flows/s (16-core host, its published figure). Target here: "
                 ">= 60 flows/s.",
    "scenario6": "Targets: p99 <= 100 ms at n = 100 and <= 500 ms at n = 1,000.",
}
CHAIN = 10


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


FLOW_PARTITIONS = 256


def _config(url: str) -> ServerConfig:
    return ServerConfig(valkey_url=url, waitpoint_hmac_secret=SECRET,
                        partitions=PartitionConfig(FLOW_PARTITIONS, 32, 32), pool_size=8)


async def _echo_worker(scheduler: Scheduler, library: FunctionLibrary, name: str,
                       stop: trio.Event) -> None:
    """Claims (grant and lease in one call) and completes at once: the reference's echo
    worker, polling every 50 ms when there is nothing to do."""
    while not stop.is_set():
        lease = await scheduler.claim_lease(lane_id="default", worker_id=name,
                                            worker_instance_id=name, lease_ttl_ms=30_000)
        if lease is None:
            await trio.sleep(0.05)
            continue
        await execution_fns.complete_execution(
            library, lease.execution_id, lease_id=lease.lease_id,
            lease_epoch=lease.lease_epoch, attempt_id=lease.attempt_id)


async def _run_chains(api: ApiClient, client: Client, flows: int, workers: int
                      ) -> dict[str, Any]:
    """Builds `flows` chains over HTTP while `workers` echo workers run against Valkey
    directly; waits for every last node; reads the stage latencies from the cores."""
    library = FunctionLibrary(client)
    scheduler = Scheduler(client, library, PartitionConfig(FLOW_PARTITIONS, 32, 32))
    chains: list[list[str]] = []
    setup: list[float] = []
    async with trio.open_nursery() as nursery:
        stop = trio.Event()
        for i in range(workers):
            nursery.start_soon(_echo_worker, scheduler, library, f"w{i}", stop)
        started = time.perf_counter()
        limiter = trio.CapacityLimiter(32)

        async def one() -> None:
            async with limiter:
                t0 = time.perf_counter()
                flow = Flow("bench.flow_dag")
                nodes = [flow.node(KIND) for _ in range(CHAIN)]
                for a, b in itertools.pairwise(nodes):
                    a >> b
                submitted = await flow.submit(api)
                setup.append(time.perf_counter() - t0)
                chains.append(submitted.execution_ids)

        async with trio.open_nursery() as submitters:
            for _ in range(flows):
                submitters.start_soon(one)
        with trio.fail_after(300):
            for ids in chains:
                while await client.execute("HGET", ExecKeys(ids[-1]).core,
                                           "public_state") != b"completed":
                    await trio.sleep(0.01)
        wall = time.perf_counter() - started
        stop.set()
    stages: list[float] = []
    for ids in chains:
        pipe = client.pipeline()
        for eid in ids:
            pipe.execute_command("HMGET", ExecKeys(eid).core, "started_at", "completed_at")
        times = [(int(s), int(c)) for s, c in await pipe.run(raise_on_error=True)]
        stages += [float(b[0] - a[1]) for a, b in itertools.pairwise(times)]
    return {"flows": flows, "wall_s": wall, "flows_per_s": flows / wall,
            "setup_p50_ms": pct(setup, 50) * 1000, "stage_latency_p50_ms": pct(stages, 50),
            "stage_latency_p95_ms": pct(stages, 95), "stage_latency_p99_ms": pct(stages, 99)}


async def scenario4_ff(url: str, flows: int, workers: int) -> dict[str, Any]:
    """The server (HTTP, listener, scanners), the builders and the workers in this
    process."""
    async with Server.running(_config(url)) as server, trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_http, build_app(server), "127.0.0.1", 0))
        async with ApiClient(f"http://127.0.0.1:{port}") as api:
            result = await _run_chains(api, server.client, flows, workers)
        nursery.cancel_scope.cancel()
    return {"system": "ff", **result}


async def scenario4_served(url: str, flows: int, workers: int) -> dict[str, Any]:
    """The reference's shape: `ff serve` in its own process; the builders and the
    workers (direct to Valkey, as ff workers run) in this one."""
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FF_")}
    env.update(FF_VALKEY_URL=url, FF_WAITPOINT_HMAC_SECRET=SECRET, FF_LOG_LEVEL="warning",
               FF_LISTEN_ADDR=f"127.0.0.1:{port}", FF_FLOW_PARTITIONS=str(FLOW_PARTITIONS))
    serve = await trio.lowlevel.open_process(
        [sys.executable, "-m", "ff.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
    try:
        async with Client.from_url(url) as client, \
                ApiClient(f"http://127.0.0.1:{port}", timeout=10) as api:
            with trio.fail_after(30):
                while True:
                    try:
                        await api.health()
                        break
                    except HttpError:
                        await trio.sleep(0.05)
            result = await _run_chains(api, client, flows, workers)
    finally:
        serve.terminate()
        with trio.move_on_after(20):
            await serve.wait()
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
    return {"system": "ff (ff serve process)", **result}


async def scenario4_baseline(url: str, flows: int, workers: int) -> dict[str, Any]:
    """The same chains on raw Valkey: queue list, a hash per flow, the next node pushed by
    the worker that completed the previous one."""
    queue = "bench:s4:queue"
    stages: list[float] = []
    async with Client.from_url(url) as client, trio.open_nursery() as nursery:
        done = trio.Event()
        finished = 0

        async def worker() -> None:
            nonlocal finished
            while not done.is_set():
                item = await client.execute("RPOP", queue)
                if item is None:
                    await trio.sleep(0.05)
                    continue
                flow, node, pushed_at = item.decode().split(":")
                stages.append(time.time() * 1000 - float(pushed_at))
                await client.execute("HSET", f"bench:s4:{{{flow}}}", node, "done")
                if int(node) + 1 < CHAIN:
                    await client.execute("LPUSH", queue, f"{flow}:{int(node) + 1}:"
                                                         f"{time.time() * 1000}")
                else:
                    finished += 1
                    if finished == flows:
                        done.set()

        for _ in range(workers):
            nursery.start_soon(worker)
        started = time.perf_counter()
        for f in range(flows):
            await client.execute("HSET", f"bench:s4:{{{f}}}", "created", "1")
            await client.execute("LPUSH", queue, f"{f}:0:{time.time() * 1000}")
        with trio.fail_after(300):
            await done.wait()
        wall = time.perf_counter() - started
    return {"system": "baseline", "flows": flows, "wall_s": wall, "flows_per_s": flows / wall,
            "stage_latency_p50_ms": pct(stages, 50), "stage_latency_p99_ms": pct(stages, 99)}


async def scenario6_ff(url: str, n: int, samples: int) -> dict[str, Any]:
    timings: list[float] = []
    async with Server.running(_config(url)) as server:
        for _ in range(samples):
            await server.client.execute("FLUSHDB")
            await server.start()
            created = await server.create_flow(CreateFlowArgs(flow_kind="bench.qcf"))
            assert created.Created is not None
            fid = created.Created.flow_id
            ups = []
            for i in range(n):
                added = await server.add_execution_to_flow(fid, AddExecutionToFlowArgs(
                    execution=CreateExecutionArgs(execution_kind="up", priority=int(i == 0))))
                ups.append(added.execution_id)
            down = (await server.add_execution_to_flow(fid, AddExecutionToFlowArgs(
                execution=CreateExecutionArgs(execution_kind="down")))).execution_id
            await server.set_edge_group_policy(fid, down, EdgeGroupPolicyArgs(
                policy="any_of", on_satisfied="cancel_remaining"))
            revision = n + 1
            for up in ups:
                staged = await server.stage_dependency_edge(fid, StageDependencyEdgeArgs(
                    upstream_execution_id=up, downstream_execution_id=down,
                    expected_graph_revision=revision))
                assert staged.Staged is not None
                revision = staged.Staged.new_graph_revision
                await server.apply_dependency_to_child(fid, ApplyDependencyToChildArgs(
                    edge_id=staged.Staged.edge_id, upstream_execution_id=up,
                    downstream_execution_id=down, graph_revision=revision))
            with trio.fail_after(30):
                while (grant := await server.claim_for_worker(
                        lane_id="default", worker_id="b", worker_instance_id="b",
                        capabilities=())) is None:
                    await trio.sleep(0.01)
            assert grant.execution_id == ups[0]
            lease = await lease_from_grant(server.library, grant, worker_id="b",
                                           worker_instance_id="b", lease_ttl_ms=30_000)
            terminal = IndexKeys(ExecutionId.parse(down).tag).lane("default", "terminal")
            t0 = time.perf_counter()
            await execution_fns.complete_execution(
                server.library, ups[0], lease_id=lease.lease_id,
                lease_epoch=lease.lease_epoch, attempt_id=lease.attempt_id)
            with trio.fail_after(30):
                while await server.client.execute("ZCARD", terminal) < n:
                    await trio.sleep(0.002)
            timings.append((time.perf_counter() - t0) * 1000)
            states = {await server.get_execution_state(u) for u in ups[1:]}
            assert states == {"cancelled"}, states
    return {"system": "ff", "n": n, "samples": samples, "p50_ms": pct(timings, 50),
            "p99_ms": pct(timings, 99), "max_ms": max(timings)}


async def scenario6_baseline(url: str, n: int, samples: int) -> dict[str, Any]:
    timings: list[float] = []
    async with Client.from_url(url) as client:
        for _ in range(samples):
            keys = [f"bench:s6:{{x}}:{i}" for i in range(n)]
            async with client.subscribe("bench:s6") as subscription, trio.open_nursery() as ns:
                finished = trio.Event()

                async def listener(sub: Any = subscription, keys: list[str] = keys,
                                   finished: trio.Event = finished) -> None:
                    async for _channel, _message in sub:
                        pipe = client.pipeline()
                        for key in keys[1:]:
                            pipe.execute_command("HSET", key, "terminal_outcome", "cancelled")
                        await pipe.run(raise_on_error=True)
                        finished.set()
                        return

                ns.start_soon(listener)
                t0 = time.perf_counter()
                await client.execute("HSET", keys[0], "terminal_outcome", "success")
                await client.execute("PUBLISH", "bench:s6", "done")
                await finished.wait()
                timings.append((time.perf_counter() - t0) * 1000)
    return {"system": "baseline", "n": n, "samples": samples, "p50_ms": pct(timings, 50),
            "p99_ms": pct(timings, 99), "max_ms": max(timings)}


async def _run(scenario: str, url: str | None, runs: int, args: Any) -> dict[str, Any]:
    report: dict[str, Any] = {"scenario": scenario, "host": host_info(), "git_sha": git_sha(),
                              "timestamp_utc": utc_now(), "python": platform.python_version(),
                              "runs": []}
    async with bench_valkey(url) as (url, _), Client.from_url(url) as client:
        report["valkey_version"] = await server_version(client)
        for _ in range(runs):
            if scenario == "scenario4":
                await client.execute("FLUSHDB")
                base = await scenario4_baseline(url, args.flows, args.workers)
                await client.execute("FLUSHDB")
                ff = await scenario4_ff(url, args.flows, args.workers)
                await client.execute("FLUSHDB")
                served = await scenario4_served(url, args.flows, args.workers)
                report["runs"].append([base, ff, served])
            else:
                rows = []
                for n in args.fanout:
                    await client.execute("FLUSHDB")
                    rows.append(await scenario6_baseline(url, n, args.samples))
                    rows.append(await scenario6_ff(url, n, args.samples))
                report["runs"].append(rows)
    report["median"] = median_rows(report["runs"])
    return report



def markdown(report: dict[str, Any]) -> str:
    host = report["host"]
    lines = [f"# {report['scenario']} ({report['git_sha']}, {report['timestamp_utc']})", "",
             f"Host: {json.dumps(host)}; Python {report['python']}; "
             f"{report['valkey_version']}. Medians of {len(report['runs'])} runs "
             "(2 shared cores, other developers' load present).", ""]
    rows = report["median"]
    keys = list(dict.fromkeys(k for row in rows for k in row if k != "system"))
    lines.append("| system | " + " | ".join(keys) + " |")
    lines.append("|---|" + "---|" * len(keys))
    for row in rows:
        cells = [f"{row[k]:.2f}" if isinstance(row.get(k), float) else str(row.get(k, "-"))
                 for k in keys]
        lines.append(f"| {row['system']} | " + " | ".join(cells) + " |")
    lines += ["", TARGETS[report["scenario"]]]
    return "\n".join(lines) + "\n"


def run_flow_bench(args: Any) -> int:
    report = trio.run(_run, args.scenario, args.url, args.runs, args)
    out = Path(args.out) if args.out else REPO_ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = report["timestamp_utc"].replace(":", "").replace("-", "")
    path = out / f"{report['scenario']}-{report['git_sha']}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2))
    path.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"report: {path}")
    return 0

