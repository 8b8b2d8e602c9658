"""Scenario 1 (submit -> claim -> complete) with one lane on a 3-primary Valkey Cluster
beside a single Valkey node, in the same run, through the same in-process Server and
worker SDK: throughput of each, their ratio (the cost of routing), and how the lane's
keys spread over the primaries (share of keys per primary).

    .venv/bin/python -m bench.cluster_bench [--n 2000] [--runs 3] [--replica-acks]
                                            [--out bench/results]

The cluster is started with tools/cluster.sh on free loopback ports and stopped after.
`--replica-acks` gives each primary a replica and adds a third system, the same cluster
with `?replica_acks=1` (every call waits for its replica): the cost of that guarantee.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

import trio

from ff.config import ServerConfig
from ff.core.records import CreateExecutionArgs
from ff.embedded import EmbeddedServer
from ff.resp import Client, ClusterClient
from ff.server import Server
from ff.worker import ClaimedTask, Worker
from tests.conftest import LocalCluster

SECRET = "ab" * 32


async def one_run(url: str, n: int, lane: str) -> dict[str, object]:
    config = ServerConfig(valkey_url=url, waitpoint_hmac_secret=SECRET, lanes=(lane,),
                          scanners_enabled=False)
    done = 0
    finished = trio.Event()
    async with Client.from_url(url) as client:
        await client.execute("FLUSHALL")
    async with Server.running(config) as server:
        worker = Worker(url, worker_id="bench", lanes=[lane], max_concurrent=32,
                        lease_ttl_ms=30_000)

        @worker.handler("noop")
        async def noop(task: ClaimedTask, payload: object) -> None:
            nonlocal done
            done += 1
            if done == n:
                finished.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(lambda task_status: worker.run(handle_signals=False,
                                                             task_status=task_status))
            start = trio.current_time()
            limiter = trio.CapacityLimiter(16)

            async def submit() -> None:
                async with limiter:
                    await server.create_execution(CreateExecutionArgs(
                        execution_kind="noop", lane_id=lane, input_payload="x"))

            async with trio.open_nursery() as submitters:
                for _ in range(n):
                    submitters.start_soon(submit)
            with trio.fail_after(300):
                await finished.wait()
            seconds = trio.current_time() - start
            worker.stop()
        shares = {}
        if isinstance(server.client, ClusterClient):
            sizes = await server.client.on_every_primary("DBSIZE")
            total = sum(sizes.values())
            shares = {address: round(size / total, 4) for address, size in sizes.items()}
        shortfalls = getattr(server.client, "replication_shortfalls", 0)
    return {"rate": n / seconds, "seconds": seconds, "shares": shares,
            "replication_shortfalls": shortfalls}


def median_rate(rows: list[dict[str, object]]) -> float:
    return statistics.median(float(r["rate"]) for r in rows)  # type: ignore[arg-type]


async def measure(n: int, runs: int, replica_acks: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        single = EmbeddedServer(Path(tmp) / "single")
        cluster = LocalCluster(Path(tmp) / "cluster", replicas=replica_acks)
        await single.start()
        cluster.start()
        urls = {"single": single.url, "cluster": cluster.url}
        if replica_acks:
            urls["cluster_replica_acks"] = cluster.url + "?replica_acks=1"
        try:
            rows: dict[str, list[dict[str, object]]] = {name: [] for name in urls}
            for i in range(runs):
                for name, url in urls.items():
                    rows[name].append(await one_run(url, n, f"lane{i}"))
        finally:
            cluster.stop()
            await single.stop()
    rates = {name: median_rate(rows[name]) for name in rows}
    report: dict[str, object] = {
        "n": n, "runs": runs, "replicas": replica_acks, "single_rate": rates["single"],
        "cluster_rate": rates["cluster"], "ratio": rates["cluster"] / rates["single"],
        "rows": rows}
    if replica_acks:
        report["replica_acks_rate"] = rates["cluster_replica_acks"]
        report["replica_acks_ratio"] = rates["cluster_replica_acks"] / rates["cluster"]
    return report


def machine() -> dict[str, str]:
    def sh(cmd: str) -> str:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    return {"nproc": sh("nproc"),
            "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
            "memory": sh("grep MemTotal /proc/meminfo | awk '{print $2\" kB\"}'"),
            "python": platform.python_version(), "valkey": sh("valkey-server --version")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--replica-acks", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = trio.run(measure, args.n, args.runs, args.replica_acks)
    report["machine"] = machine()
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}, indent=2))
    for row in report["rows"]["cluster"]:  # type: ignore[index]
        print("cluster key shares per primary:", row["shares"])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        name = "cluster_bench_replica_acks" if args.replica_acks else "cluster_bench"
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
