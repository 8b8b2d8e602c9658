"""Throughput of ff.resp against redis-py's asyncio client, on one embedded valkey-server.

For 1, 16, 64 and 256 concurrent callers, each workload runs for a fixed time with our
client (trio) and with `redis.asyncio` (asyncio, hiredis parser, one pooled connection
per caller so it never waits for a connection), counting completed commands:

  set/get  each caller alternates SET k v and GET k on its own key
  fcall    each caller runs FCALL of a one-line function (GET of its key)

`valkey-benchmark -P 16 -t set,get` against the same server gives the ceiling. Every
measurement is repeated `--runs` times, alternating the clients, and the median kept.

    /tmp/venv/bin/python bench/resp_bench.py [--runs 3] [--duration 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ff.embedded import EmbeddedServer
from ff.resp import Client

CONCURRENCY = (1, 16, 64, 256)
WORKLOADS = ("set/get", "fcall")
LIBRARY = """#!lua name=ffbench
redis.register_function{
  function_name = 'ffbench_get',
  callback = function(keys, args) return redis.call('GET', keys[1]) end,
  flags = {'no-writes'},
}
"""
VALUE = b"x" * 64


async def ours(url: str, workload: str, callers: int, duration: float, pool_size: int) -> float:
    """Commands per second through ff.resp."""
    async with Client.from_url(url, pool_size=pool_size) as client:
        await client.execute("PING")
        done = 0

        async def caller(n: int, end: float) -> None:
            nonlocal done
            key = f"bench:{n}"
            await client.execute("SET", key, VALUE)
            count = 0
            if workload == "set/get":
                while trio.current_time() < end:
                    await client.execute("SET", key, VALUE)
                    await client.execute("GET", key)
                    count += 2
            else:
                while trio.current_time() < end:
                    await client.fcall("ffbench_get", (key,), ())
                    count += 1
            done += count

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            for n in range(callers):
                nursery.start_soon(caller, n, start + duration)
        return done / (trio.current_time() - start)


async def redis_py(port: int, workload: str, callers: int, duration: float) -> float:
    """Commands per second through redis.asyncio (hiredis parser, RESP2 default)."""
    import redis.asyncio as aioredis
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE, "redis-py should parse with hiredis for a fair comparison"
    client = aioredis.Redis(host="127.0.0.1", port=port, max_connections=callers)
    try:
        await client.ping()
        done = 0
        loop = asyncio.get_running_loop()

        async def caller(n: int, end: float) -> None:
            nonlocal done
            key = f"bench:{n}"
            await client.set(key, VALUE)
            count = 0
            if workload == "set/get":
                while loop.time() < end:
                    await client.set(key, VALUE)
                    await client.get(key)
                    count += 2
            else:
                while loop.time() < end:
                    await client.fcall("ffbench_get", 1, key)
                    count += 1
            done += count

        start = loop.time()
        await asyncio.gather(*(caller(n, start + duration) for n in range(callers)))
        return done / (loop.time() - start)
    finally:
        await client.aclose()


def server_ceiling(port: int) -> dict[str, float]:
    """valkey-benchmark (or redis-benchmark) -P 16 SET/GET requests per second."""
    binary = shutil.which("valkey-benchmark") or shutil.which("redis-benchmark")
    if binary is None:
        return {}
    out = subprocess.run(
        [binary, "-p", str(port), "-P", "16", "-t", "set,get", "-q", "-n", "400000"],
        capture_output=True, text=True, check=True,
    ).stdout
    found = re.findall(r"(SET|GET): ([\d.]+) requests per second", out.replace("\r", "\n"))
    return {name.lower(): float(rps) for name, rps in found}


def machine() -> dict[str, str]:
    cpu = "unknown"
    memory = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    import hiredis
    import redis

    server = subprocess.run(
        [shutil.which("valkey-server") or "redis-server", "--version"],
        capture_output=True, text=True,
    ).stdout.strip()
    return {
        "nproc": str(len(__import__("os").sched_getaffinity(0))),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "trio": trio.__version__,
        "hiredis": hiredis.__version__,
        "redis-py": redis.__version__,
        "server": server,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions; medians reported")
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--pool-size", type=int, default=4, help="ff.resp pool size")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="resp-bench") as directory:
        server = EmbeddedServer(directory)
        trio.run(server.start)
        try:
            url = f"redis://127.0.0.1:{server.port}/0"

            async def load() -> None:
                async with Client.from_url(url) as client:
                    await client.function_load(LIBRARY)

            trio.run(load)
            rows = []
            for workload in WORKLOADS:
                for callers in CONCURRENCY:
                    mine: list[float] = []
                    theirs: list[float] = []
                    for run in range(args.runs):
                        order = ("ours", "redis-py") if run % 2 == 0 else ("redis-py", "ours")
                        for which in order:
                            if which == "ours":
                                mine.append(trio.run(
                                    ours, url, workload, callers, args.duration, args.pool_size
                                ))
                            else:
                                theirs.append(asyncio.run(
                                    redis_py(server.port, workload, callers, args.duration)
                                ))
                    row = {
                        "workload": workload,
                        "callers": callers,
                        "ff_resp": statistics.median(mine),
                        "redis_py": statistics.median(theirs),
                        "ff_resp_runs": mine,
                        "redis_py_runs": theirs,
                    }
                    row["ratio"] = row["ff_resp"] / row["redis_py"]
                    rows.append(row)
                    print(
                        f"{workload:8} {callers:4} callers: ff.resp {row['ff_resp']:9.0f} ops/s"
                        f"  redis-py {row['redis_py']:9.0f} ops/s  ratio {row['ratio']:.2f}",
                        flush=True,
                    )
            ceiling = server_ceiling(server.port)
        finally:
            trio.run(server.stop)

    info = machine()
    print()
    print("| workload | callers | ff.resp ops/s | redis-py asyncio ops/s | ratio |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['workload']} | {row['callers']} | {row['ff_resp']:,.0f} "
            f"| {row['redis_py']:,.0f} | {row['ratio']:.2f}x |"
        )
    if ceiling:
        print(
            f"\nServer ceiling (benchmark tool, -P 16): SET {ceiling.get('set', 0):,.0f}/s, "
            f"GET {ceiling.get('get', 0):,.0f}/s"
        )
    print("\n" + ", ".join(f"{k}: {v}" for k, v in info.items()))
    if args.json:
        args.json.write_text(json.dumps(
            {"machine": info, "runs": args.runs, "duration": args.duration,
             "pool_size": args.pool_size, "rows": rows, "server_ceiling": ceiling,
             "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            indent=2,
        ))


if __name__ == "__main__":
    main()
