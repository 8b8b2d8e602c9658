"""SAQ peer: N no-op jobs through SAQ's own worker (`saq saq_peer.settings --workers P`).

Workers: SAQ's CLI with one process per core, each with `concurrency` workers/procs.
Jobs are enqueued with `Queue.enqueue` from 32 asyncio tasks. Done = the job left the
queue's `incomplete` set; verified by reading every job back (status `complete`); latency
= SAQ's own `queued` -> `completed` timestamps (ms).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import _common as common
from saq import Queue
from saq.job import Status

SYSTEM = "saq"


async def noop(ctx: dict[str, Any], *, payload: str) -> None:
    return None


def _queue() -> Queue:
    return Queue.from_url(os.environ.get("BENCH_URL", "redis://127.0.0.1"))


settings = {
    "queue": _queue(),
    "functions": [noop],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "8")),
}


async def body(args: Any) -> dict[str, Any]:
    procs = max(args.procs, 1)
    concurrency = max(args.workers // procs, 1)
    cli = str(Path(sys.executable).parent / "saq")
    env = {"BENCH_URL": args.url, "BENCH_CONCURRENCY": str(concurrency)}
    data = common.payload(args.payload_bytes)
    queue = Queue.from_url(args.url)
    await queue.connect()
    with common.Workers([[cli, "saq_peer.settings", "--workers", str(procs), "--quiet"]],
                        env) as workers:
        # A SAQ worker sweeps the active list once as it starts, and aborts a job it finds
        # there before its status says active (a start-up race): let the sweeps pass first.
        await asyncio.sleep(1.5)
        await queue.enqueue("noop", key="warm-up", payload="warm-up", retries=3)
        for _ in range(3000):
            job = await queue.job("warm-up")
            if job is not None and job.status == Status.COMPLETE:
                break
            workers.check()
            await asyncio.sleep(0.02)
        else:
            raise TimeoutError("the warm-up job did not complete in 60 s")
        submitted = 0

        async def submit_one(i: int) -> None:
            nonlocal submitted
            await queue.enqueue("noop", key=f"j{i}", payload=data)
            submitted += 1

        async def done_count() -> int:
            return submitted - await queue.count("incomplete")

        submit_s, e2e_s = await common.drive_async(args, submit_one, done_count)
    ok = 0
    samples: list[float] = []
    keys = [f"j{i}" for i in range(args.n)]
    for start in range(0, args.n, 1000):
        for job in await queue.jobs(keys[start:start + 1000]):
            if job is not None and job.status == Status.COMPLETE:
                ok += 1
                samples.append(float(job.completed - job.queued))
    await queue.disconnect()
    return common.result(
        SYSTEM, args, submit_s=submit_s, e2e_s=e2e_s, completed=ok, verified=ok == args.n,
        latency_ms=common.percentiles(samples),
        latency_source="SAQ job queued -> completed (ms)",
        config={"worker": "saq CLI", "processes": procs, "concurrency": concurrency,
                "submit_concurrency": args.concurrency},
        versions_=common.versions("saq", "redis", "hiredis"))


if __name__ == "__main__":
    common.run_main(lambda args: asyncio.run(body(args)), SYSTEM)
