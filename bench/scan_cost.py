"""What "every server scans every partition" costs: Valkey commands per second and Valkey
CPU with 0, 1, 2, ... idle ff servers (scanners on, default intervals), one Valkey, in the
same run. Idle is the worst case for the ratio: scanning is the only load.

    .venv/bin/python -m bench.scan_cost [--seconds 10] [--servers 3] [--partitions 256]
                                        [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import AsyncExitStack
from pathlib import Path

import trio

from bench.cluster_bench import machine
from ff.config import ServerConfig
from ff.core.partitions import PartitionConfig
from ff.embedded import EmbeddedServer
from ff.resp import Client
from ff.server import Server

SECRET = "ab" * 32
WARM_UP_S = 3.0  # every scanner has run at least once (intervals are 1 s)


def _info_fields(raw: bytes) -> dict[str, str]:
    return dict(line.split(":", 1) for line in raw.decode().splitlines() if ":" in line)


async def sample(client: Client) -> tuple[int, float]:
    """(commands processed so far, Valkey CPU seconds so far)."""
    stats = _info_fields(await client.execute("INFO", "stats"))
    cpu = _info_fields(await client.execute("INFO", "cpu"))
    return (int(stats["total_commands_processed"]),
            float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]))


async def measure(seconds: float, max_servers: int, partitions: int) -> dict[str, object]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedServer(Path(tmp) / "valkey")
        await valkey.start()
        try:
            config = ServerConfig(valkey_url=valkey.url, waitpoint_hmac_secret=SECRET,
                                  partitions=PartitionConfig(partitions))
            async with Client.from_url(valkey.url) as probe:
                for count in range(max_servers + 1):
                    async with AsyncExitStack() as stack:
                        for _ in range(count):
                            await stack.enter_async_context(Server.running(config))
                        await trio.sleep(WARM_UP_S)
                        commands0, cpu0 = await sample(probe)
                        started = trio.current_time()
                        await trio.sleep(seconds)
                        commands1, cpu1 = await sample(probe)
                        elapsed = trio.current_time() - started
                    rows.append({"servers": count,
                                 "commands_per_s": round((commands1 - commands0 - 2) / elapsed, 1),
                                 "valkey_cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 2)})
                    print(rows[-1], flush=True)
        finally:
            await valkey.stop()
    return {"seconds": seconds, "partitions": partitions, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = trio.run(measure, args.seconds, args.servers, args.partitions)
    report["machine"] = machine()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scan_cost.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
