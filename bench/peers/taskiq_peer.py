"""Taskiq peer: N no-op tasks over the Redis *stream* broker (taskiq-redis), results in Redis.

Workers: `taskiq worker taskiq_peer:broker` with one process per core and workers/procs
async tasks each (`--max-async-tasks`). Tasks are sent with `.kiq()` from 32 asyncio tasks.
Done = the task's result key exists (`RedisAsyncResultBackend`); verified by reading every
result back (no error). Taskiq records no enqueue time, so no latency is reported.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import _common as common
from redis.asyncio import Redis
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker

SYSTEM = "taskiq"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1")

broker = RedisStreamBroker(URL).with_result_backend(RedisAsyncResultBackend(URL))


@broker.task(task_name="noop")
async def noop(payload: str) -> None:
    return None


async def body(args: Any) -> dict[str, Any]:
    procs = max(args.procs, 1)
    per_proc = max(args.workers // procs, 1)
    cli = str(Path(sys.executable).parent / "taskiq")
    env = {"BENCH_URL": args.url}
    data = common.payload(args.payload_bytes)
    redis = Redis.from_url(args.url)
    await broker.startup()
    cmd = [cli, "worker", "taskiq_peer:broker", "--workers", str(procs),
           "--max-async-tasks", str(per_proc), "--no-configure-logging"]
    with common.Workers([cmd], env) as workers:
        warm = await noop.kiq("warm-up")
        await warm.wait_result(check_interval=0.02, timeout=60)
        workers.check()

        async def check(ids: list[str]) -> list[bool]:
            pipe = redis.pipeline(transaction=False)
            for task_id in ids:
                pipe.exists(task_id)
            return [bool(x) for x in await pipe.execute()]

        remaining = common.RemainingIds(check)
        task_ids: list[str] = []

        async def submit_one(i: int) -> None:
            task = await noop.kiq(data)
            task_ids.append(task.task_id)
            remaining.add(task.task_id)

        submit_s, e2e_s = await common.drive_async(args, submit_one, remaining.count)
    ok = 0
    for task_id in task_ids:
        res = await broker.result_backend.get_result(task_id)
        if not res.is_err:
            ok += 1
    await broker.shutdown()
    await redis.aclose()
    return common.result(
        SYSTEM, args, submit_s=submit_s, e2e_s=e2e_s, completed=ok, verified=ok == args.n,
        latency_source="not recorded by taskiq",
        config={"worker": "taskiq CLI", "broker": "RedisStreamBroker", "processes": procs,
                "max_async_tasks": per_proc, "submit_concurrency": args.concurrency},
        versions_=common.versions("taskiq", "taskiq-redis", "redis", "hiredis"))


if __name__ == "__main__":
    common.run_main(lambda args: asyncio.run(body(args)), SYSTEM)
