"""Cost of one `list_executions` cursor page as the partition grows.

One in-process `Server` (scanners off) on an embedded valkey-server, one partition filled
with real executions (`ff_create_execution`) up to 1,000 and then 100,000. At each size it
times one page (limit 50) at the start, the middle and the end of the partition through
`Server.list_executions`, and the same `ZRANGE BYLEX ... LIMIT` through the same RESP client
as the baseline (raw Valkey doing the page's work). For comparison it also times what a
page cost before the id index was ordered: reading every id of the partition and sorting
them (`full_us`). Medians of `--repeat` pages per position; the target is that a page at
100,000 costs within 2x of a page at 1,000.

    .venv/bin/python bench/list_bench.py [--repeat 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import git_sha, host_info, server_version_from_info
from ff.config import ServerConfig
from ff.core.ids import ExecutionId
from ff.core.keys import IndexKeys
from ff.core.partitions import PartitionConfig
from ff.core.records import CreateExecutionArgs
from ff.embedded import embedded_server
from ff.script.library import text
from ff.server import Server

SIZES = (1_000, 100_000)
PAGE = 50
PARTITION = 0
CREATE_BATCH = 500


async def fill(server: Server, count: int) -> None:
    """Adds executions to the partition until it holds `count`."""
    have = await server.client.execute("ZCARD", IndexKeys(PARTITION).all_executions)
    missing = count - have
    for start in range(0, missing, CREATE_BATCH):
        async with trio.open_nursery() as nursery:
            for _ in range(min(CREATE_BATCH, missing - start)):
                args = CreateExecutionArgs(execution_kind="job",
                                           execution_id=ExecutionId.mint(PARTITION))
                nursery.start_soon(server.create_execution, args)


async def time_pages(server: Server, repeat: int) -> dict[str, dict[str, float]]:
    """Median µs of one page via the Server and via raw ZRANGE BYLEX, per position."""
    key = IndexKeys(PARTITION).all_executions
    size = await server.client.execute("ZCARD", key)
    cursors: dict[str, str | None] = {"start": None}
    for name, rank in (("middle", size // 2), ("end", max(size - PAGE - 1, 0))):
        [member] = await server.client.execute("ZRANGE", key, rank, rank)
        cursors[name] = text(member)
    out: dict[str, dict[str, float]] = {}
    for name, cursor in cursors.items():
        ours, raw = [], []
        for _ in range(repeat):
            started = time.perf_counter()
            page = await server.list_executions(PARTITION, cursor=cursor, limit=PAGE)
            ours.append(time.perf_counter() - started)
            assert len(page.executions) == PAGE or name == "end"
            started = time.perf_counter()
            await server.client.execute("ZRANGE", key, f"({cursor}" if cursor else "-", "+",
                                        "BYLEX", "LIMIT", 0, PAGE + 1)
            raw.append(time.perf_counter() - started)
        out[name] = {"ff_us": statistics.median(ours) * 1e6,
                     "raw_us": statistics.median(raw) * 1e6}
    full = []
    for _ in range(max(repeat // 20, 3)):
        started = time.perf_counter()
        sorted(text(m) for m in await server.client.execute("ZRANGE", key, 0, -1))
        full.append(time.perf_counter() - started)
    out["start"]["full_us"] = statistics.median(full) * 1e6
    return out


async def main(repeat: int) -> dict[str, Any]:
    report: dict[str, Any] = {"bench": "list_executions cursor page", "page": PAGE,
                              "repeat": repeat, "git": git_sha(), "host": host_info(),
                              "sizes": {}}
    with tempfile.TemporaryDirectory() as data:
        async with embedded_server(Path(data)) as valkey:
            config = ServerConfig(valkey_url=valkey.url, waitpoint_hmac_secret="ab" * 32,
                                  partitions=PartitionConfig(4, 2, 2), scanners_enabled=False)
            async with Server.running(config) as server:
                report["valkey"] = server_version_from_info(
                    text(await server.client.execute("INFO", "server")))
                for size in SIZES:
                    started = time.perf_counter()
                    await fill(server, size)
                    print(f"filled {size} executions in {time.perf_counter() - started:.1f} s",
                          file=sys.stderr)
                    report["sizes"][str(size)] = await time_pages(server, repeat)
    small, large = (report["sizes"][str(s)] for s in SIZES)
    report["ratio_large_to_small"] = {
        name: large[name]["ff_us"] / small[name]["ff_us"] for name in small}
    return report


def render(report: dict[str, Any]) -> str:
    lines = [f"list_executions, one cursor page of {report['page']} (median of "
             f"{report['repeat']}), {report['valkey']}, git {report['git']}",
             f"{'size':>8} {'position':>8} {'ff µs':>8} {'raw µs':>8} {'ff/raw':>7}"]
    for size, positions in report["sizes"].items():
        for name, row in positions.items():
            lines.append(f"{size:>8} {name:>8} {row['ff_us']:8.0f} {row['raw_us']:8.0f} "
                         f"{row['ff_us'] / row['raw_us']:7.2f}")
    for size, positions in report["sizes"].items():
        lines.append(f"{size:>8} whole partition read and sorted (the former page): "
                     f"{positions['start']['full_us']:,.0f} µs")
    ratios = ", ".join(f"{k} {v:.2f}x" for k, v in report["ratio_large_to_small"].items())
    lines.append(f"page at {SIZES[1]:,} vs {SIZES[0]:,}: {ratios} (target <= 2x)")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json", type=Path, help="write the report here")
    options = parser.parse_args()
    result = trio.run(main, options.repeat)
    print(render(result))
    if options.json:
        options.json.write_text(json.dumps(result, indent=2) + "\n")
