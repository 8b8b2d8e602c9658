"""What one execution costs in Valkey, by key kind, while waiting, after completing and
after the retention trimmer purged it: the breakdown behind scenario 3's memory growth.

Creates `n` executions with scenario 3's payload (4 KiB), measures, then claims, renews
once and completes each one as a worker does, measures again, then purges every one (as
the retention trimmer does once retention has passed) and measures a last time. Each
measurement: `used_memory` (INFO memory) and, per key kind (the key with its hash tag, ids
and numbers replaced), the key count and the summed `MEMORY USAGE` (SAMPLES 0: exact).

    python -m bench.exec_memory [-n 1000] [--payload-bytes 4096]
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from bench.harness import REPO_ROOT, git_sha, host_info, payload_pool, utc_now

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def kind_of(key: str) -> str:
    """`ff:exec:{fp:3}:{fp:3}<uuid>:core` -> `ff:exec:{}:{}<id>:core`."""
    kind = re.sub(r"\{[^}]*\}", "{}", _UUID.sub("<id>", key))
    return re.sub(r":\d+(?=:|$)", ":<n>", kind)


async def measure(client: Any) -> dict[str, Any]:
    info = await client.execute("INFO", "memory")
    text = info.decode() if isinstance(info, bytes) else str(info)
    used = int(re.search(r"^used_memory:(\d+)", text, re.M).group(1))  # type: ignore[union-attr]
    kinds: dict[str, dict[str, int]] = {}
    cursor = b"0"
    while True:
        cursor, keys = await client.execute("SCAN", cursor, "COUNT", 1000)
        for raw in keys:
            key = raw.decode()
            size = await client.execute("MEMORY", "USAGE", key, "SAMPLES", 0) or 0
            entry = kinds.setdefault(kind_of(key), {"keys": 0, "bytes": 0})
            entry["keys"] += 1
            entry["bytes"] += int(size)
        if cursor in (b"0", 0, "0"):
            break
    return {"used_memory": used, "kinds": dict(sorted(kinds.items()))}


async def run(n: int, payload_bytes: int) -> dict[str, Any]:
    from ff.config import ServerConfig
    from ff.core.records import CreateExecutionArgs, LeaseHandle
    from ff.embedded import EmbeddedServer
    from ff.scheduler import lease_from_grant
    from ff.script import execution as execution_fns
    from ff.script import lease as lease_fns
    from ff.server import Server

    lane = "mem"
    payloads = payload_pool(payload_bytes)
    report: dict[str, Any] = {"n": n, "payload_bytes": payload_bytes, "host": host_info(),
                              "git_sha": git_sha(), "timestamp_utc": utc_now()}
    with tempfile.TemporaryDirectory(prefix="ff-mem-") as tmp:
        embedded = EmbeddedServer(Path(tmp) / "valkey")
        await embedded.start()
        config = ServerConfig(valkey_url=embedded.url, lanes=(lane,), scanners_enabled=False,
                              lane_spread=1, waitpoint_hmac_secret=secrets.token_hex(32))
        try:
            async with Server.running(config) as server:
                client, lib = server.client, server.library
                report["empty"] = await measure(client)
                for i in range(n):
                    await server.create_execution(CreateExecutionArgs(
                        execution_kind="mem", lane_id=lane, payload_encoding="binary",
                        input_payload=payloads[i % len(payloads)]))
                report["waiting"] = await measure(client)
                done: list[str] = []
                for _ in range(n):
                    grant = await server.claim_for_worker(
                        lane_id=lane, worker_id="w", worker_instance_id="w-1")
                    assert grant is not None
                    lease: LeaseHandle = await lease_from_grant(
                        lib, grant, worker_id="w", worker_instance_id="w-1", lease_ttl_ms=6000)
                    await lease_fns.renew_lease(
                        lib, lease.execution_id, attempt_index=lease.attempt_index,
                        attempt_id=lease.attempt_id, lease_id=lease.lease_id,
                        lease_epoch=lease.lease_epoch, lease_ttl_ms=6000)
                    await execution_fns.complete_execution(
                        lib, lease.execution_id, lease_id=lease.lease_id,
                        lease_epoch=lease.lease_epoch, attempt_id=lease.attempt_id,
                        source="worker")
                    done.append(lease.execution_id)
                report["completed"] = await measure(client)
                for eid in done:
                    await execution_fns.purge_execution(lib, eid, lane_id=lane,
                                                        default_retention_ms=0)
                report["purged"] = await measure(client)
        finally:
            await embedded.stop()
    return report


def per_execution(report: dict[str, Any]) -> list[str]:
    """Markdown rows: per key kind and phase, the key count and the kind's summed bytes
    divided by the number of executions (a shared index shows its share)."""
    n = report["n"]
    phases = ("waiting", "completed", "purged")
    kinds = sorted({k for p in phases for k in report[p]["kinds"]})
    rows = ["| key kind | " + " | ".join(f"{p} (keys, B/exec)" for p in phases) + " |",
            "|---|" + "---|" * len(phases)]
    for kind in kinds:
        cells = []
        for phase in phases:
            entry = report[phase]["kinds"].get(kind)
            cells.append(f"{entry['keys']}, {entry['bytes'] / n:.0f}" if entry else "-")
        rows.append(f"| `{kind}` | " + " | ".join(cells) + " |")
    base = report["empty"]["used_memory"]
    rows.append("| **used_memory above empty, B/exec** | " + " | ".join(
        f"{(report[p]['used_memory'] - base) / n:.0f}" for p in phases) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.exec_memory")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--payload-bytes", type=int, default=4096)
    parser.add_argument("--out", default=str(REPO_ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    report = trio.run(run, args.n, args.payload_bytes)
    host = report["host"]
    text = "\n".join([
        f"# Valkey memory per execution ({report['n']} executions, "
        f"{report['payload_bytes']} B payload), {report['timestamp_utc']}", "",
        f"Machine: {host['cores']} cores ({host['cpu']}), {host['mem_gb']} GB, Python "
        f"{host['python']}; git {report['git_sha']}. `python -m bench.exec_memory`.", "",
        *per_execution(report), ""])
    out = Path(args.out) / "exec_memory"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
