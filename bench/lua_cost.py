"""Valkey CPU per task: what one submit -> claim -> complete costs the server.

One embedded valkey-server, no scanners, no workers: N executions created through
`Server.create_execution` (payload 4 KiB), claimed with `ff_claim_next` (and, as
`ff_batch`, created with `create_executions` 100 at a time and claimed with
`ff_claim_batch` 16 at a time, as a batched worker does) and completed with
`ff_complete_execution`, 32 calls in flight; the raw baseline does LPUSH, LMPOP and HSET
for N items through the same RESP client. Between CONFIG RESETSTAT and the end of each
phase it reads `INFO commandstats` (usec spent per command, FCALLs included) and the
server's `used_cpu_user + used_cpu_sys` (INFO cpu), and prints both per task.

    .venv/bin/python bench/lua_cost.py [-n 5000] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import git_sha, host_info, server_version_from_info
from ff.config import ServerConfig
from ff.core.ids import ExecutionId
from ff.core.partitions import PartitionConfig
from ff.core.records import CreateExecutionArgs, LeaseHandle
from ff.embedded import embedded_server
from ff.script import execution as execution_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import text
from ff.server import Server

IN_FLIGHT = 32
CREATE_BATCH = 100
CLAIM_BATCH = 16
PAYLOAD = b"x" * 4096


def parse_info(raw: object) -> dict[str, str]:
    out = {}
    for line in text(raw).splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            out[key] = value
    return out


def command_usec(info: dict[str, str]) -> dict[str, int]:
    """usec per command from INFO commandstats (`cmdstat_fcall:calls=..,usec=..`)."""
    out = {}
    for key, value in info.items():
        if key.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in value.split(","))
            out[key[len("cmdstat_"):]] = int(fields["usec"])
    return out


def cpu_seconds(info: dict[str, str]) -> float:
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def measured(client: Any, n: int, work: Any) -> dict[str, Any]:
    """Runs `work()` between a stats reset and a read; figures per task in us (the
    commandstats figure counts FCALL time, which includes the commands inside it)."""
    await client.execute("CONFIG", "RESETSTAT")
    before = cpu_seconds(parse_info(await client.execute("INFO", "cpu")))
    await work()
    after = cpu_seconds(parse_info(await client.execute("INFO", "cpu")))
    usec = command_usec(parse_info(await client.execute("INFO", "commandstats")))
    usec.pop("config", None)
    usec.pop("info", None)
    return {"cpu_us_per_task": (after - before) * 1e6 / n,
            # FCALL time includes the commands the function ran; for the baseline this is
            # the plain commands' time.
            "commandstats_us_per_task": (usec["fcall"] if "fcall" in usec
                                         else sum(usec.values())) / n,
            "by_command_us_per_task": {k: v / n for k, v in sorted(usec.items())}}


async def in_parallel(n: int, one: Any) -> None:
    limiter = trio.CapacityLimiter(IN_FLIGHT)

    async def run(i: int) -> None:
        async with limiter:
            await one(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(run, i)


async def ff_run(server: Server, n: int, batched: bool = False) -> dict[str, Any]:
    lib = server.library
    lane = f"cost-{uuid.uuid4().hex[:8]}"
    partition = server.config.partitions.lane_partition(lane)
    leases: list[Any] = []

    def args() -> CreateExecutionArgs:
        return CreateExecutionArgs(
            execution_kind="job", lane_id=lane, input_payload=PAYLOAD,
            execution_id=ExecutionId.solo(lane, server.config.partitions))

    async def create(_: int) -> None:
        await server.create_execution(args())

    async def create_batch(_: int) -> None:
        await server.create_executions([args() for _ in range(CREATE_BATCH)])

    async def claim(_: int) -> None:
        lease = await scheduling_fns.claim_next(
            lib, partition, lane_id=lane, worker_id="w", worker_instance_id="wi-1",
            worker_caps_csv="", lease_id=str(uuid.uuid4()), lease_ttl_ms=30_000,
            attempt_id=str(uuid.uuid4()), grant_ttl_ms=5_000)
        assert isinstance(lease, LeaseHandle)
        leases.append(lease)

    async def claim_batch(_: int) -> None:
        batch = await scheduling_fns.claim_batch(
            lib, partition, lane_id=lane, worker_id="w", worker_instance_id="wi-1",
            worker_caps_csv="", lease_ttl_ms=30_000,
            ids=[(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(CLAIM_BATCH)])
        leases.extend(batch.leases)

    async def complete(i: int) -> None:
        lease = leases[i]
        await execution_fns.complete_execution(
            lib, lease.execution_id, lease_id=lease.lease_id, lease_epoch=lease.lease_epoch,
            attempt_id=lease.attempt_id, result=b"{}")

    steps = ((("create", create, n), ("claim", claim, n), ("complete", complete, n))
             if not batched else
             (("create", create_batch, n // CREATE_BATCH), ("claim", claim_batch, n // CLAIM_BATCH),
              ("complete", complete, n)))
    phases = {}
    for name, step, calls in steps:
        phases[name] = await measured(server.client, n,
                                      lambda s=step, c=calls: in_parallel(c, s))
    return phases


async def baseline_run(client: Any, n: int) -> dict[str, Any]:
    queue, results = f"q-{uuid.uuid4().hex[:8]}", f"r-{uuid.uuid4().hex[:8]}"
    popped: list[bytes] = []

    async def push(i: int) -> None:
        await client.execute("LPUSH", queue, PAYLOAD)

    async def pop(_: int) -> None:
        reply = await client.execute("LMPOP", 1, queue, "RIGHT", "COUNT", 1)
        popped.append(reply[1][0])

    async def done(i: int) -> None:
        await client.execute("HSET", results, str(i), b"{}")

    phases = {}
    for name, step in (("create", push), ("claim", pop), ("complete", done)):
        phases[name] = await measured(client, n, lambda s=step: in_parallel(n, s))
    return phases


def totals(phases: dict[str, Any]) -> dict[str, float]:
    return {key: sum(p[key] for p in phases.values())
            for key in ("cpu_us_per_task", "commandstats_us_per_task")}


async def main(n: int, runs: int) -> dict[str, Any]:
    report: dict[str, Any] = {"bench": "valkey cpu per task", "n": n, "runs": runs,
                              "git": git_sha(), "host": host_info(), "ff": [], "ff_batch": [],
                              "baseline": []}
    with tempfile.TemporaryDirectory() as data:
        async with embedded_server(Path(data)) as valkey:
            config = ServerConfig(valkey_url=valkey.url, waitpoint_hmac_secret="ab" * 32,
                                  partitions=PartitionConfig(4, 2, 2), scanners_enabled=False)
            async with Server.running(config) as server:
                report["valkey"] = server_version_from_info(
                    text(await server.client.execute("INFO", "server")))
                for _ in range(runs):
                    report["baseline"].append(await baseline_run(server.client, n))
                    report["ff"].append(await ff_run(server, n))
                    report["ff_batch"].append(await ff_run(server, n, batched=True))
    for system in ("ff", "ff_batch", "baseline"):
        per_run = [totals(p) for p in report[system]]
        report[f"{system}_median"] = {
            key: statistics.median(r[key] for r in per_run) for key in per_run[0]}
    for system in ("ff", "ff_batch"):
        report[f"ratio_cpu_{system}"] = (report[f"{system}_median"]["cpu_us_per_task"]
                                         / report["baseline_median"]["cpu_us_per_task"])
    return report


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = trio.run(main, args.n, args.runs)
    for system in ("ff", "ff_batch", "baseline"):
        med = report[f"{system}_median"]
        print(f"{system:9} cpu {med['cpu_us_per_task']:7.1f} us/task   commandstats "
              f"{med['commandstats_us_per_task']:7.1f} us/task")
        last = report[system][-1]
        for phase, figures in last.items():
            print(f"   {phase:9} cpu {figures['cpu_us_per_task']:7.1f}  "
                  + " ".join(f"{k}={v:.1f}" for k, v in figures["by_command_us_per_task"].items()))
    for system in ("ff", "ff_batch"):
        print(f"ratio {system}/baseline (cpu): {report[f'ratio_cpu_{system}']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    cli()
