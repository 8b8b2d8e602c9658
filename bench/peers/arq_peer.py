"""arq peer: N no-op jobs through arq's own worker (`arq arq_peer.WorkerSettings`).

Workers: one `arq` worker process per core, each running up to workers/procs jobs at a
time (`max_jobs`), polling every 10 ms (the default 0.5 s would cap a no-op queue at one
batch per half second). Jobs are enqueued with `ArqRedis.enqueue_job` from 32 asyncio
tasks. Done = the job left `arq:queue` (arq removes it when it finishes); verified through
each job's `result_info()` (success); latency = arq's own enqueue_time -> finish_time.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import _common as common
from arq import create_pool
from arq.connections import RedisSettings
from arq.jobs import Job

SYSTEM = "arq"
QUEUE = "arq:queue"


async def noop(ctx: dict[str, Any], payload: str) -> None:
    return None


class WorkerSettings:
    functions = [noop]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_URL", "redis://127.0.0.1"))
    max_jobs = int(os.environ.get("BENCH_MAX_JOBS", "8"))
    poll_delay = float(os.environ.get("BENCH_POLL_DELAY", "0.01"))
    keep_result = 3600


async def body(args: Any) -> dict[str, Any]:
    procs = max(args.procs, 1)
    max_jobs = max(args.workers // procs, 1)
    arq_cli = str(Path(sys.executable).parent / "arq")
    env = {"BENCH_URL": args.url, "BENCH_MAX_JOBS": str(max_jobs), "BENCH_POLL_DELAY": "0.01"}
    data = common.payload(args.payload_bytes)
    redis = await create_pool(RedisSettings.from_dsn(args.url))
    with common.Workers([[arq_cli, "arq_peer.WorkerSettings"]] * procs, env) as workers:
        warm = await redis.enqueue_job("noop", "warm-up", _job_id="warm-up")
        assert warm is not None
        await asyncio.wait_for(warm.result(poll_delay=0.02), timeout=60)
        workers.check()
        submitted = 0

        async def submit_one(i: int) -> None:
            nonlocal submitted
            await redis.enqueue_job("noop", data, _job_id=f"j{i}")
            submitted += 1

        async def done_count() -> int:
            return submitted - int(await redis.zcard(QUEUE))

        submit_s, e2e_s = await common.drive_async(args, submit_one, done_count)
    ok = 0
    samples: list[float] = []
    for i in range(args.n):
        info = await Job(f"j{i}", redis).result_info()
        if info is not None and info.success:
            ok += 1
            samples.append((info.finish_time - info.enqueue_time).total_seconds() * 1000)
    await redis.aclose()
    return common.result(
        SYSTEM, args, submit_s=submit_s, e2e_s=e2e_s, completed=ok, verified=ok == args.n,
        latency_ms=common.percentiles(samples),
        latency_source="arq result enqueue_time -> finish_time (ms)",
        config={"worker": "arq CLI", "processes": procs, "max_jobs": max_jobs,
                "poll_delay_s": 0.01, "submit_concurrency": args.concurrency},
        versions_=common.versions("arq", "redis", "hiredis"))


if __name__ == "__main__":
    common.run_main(lambda args: asyncio.run(body(args)), SYSTEM)
