"""Celery peer: N no-op tasks over the Redis broker, results in the Redis backend.

Workers: `celery -A celery_peer worker` with the prefork pool at one process per core (its
recommended production setup; `--concurrency` = cores), gossip/mingle/heartbeat off, prefetch
multiplier default (4). Tasks are sent with `.delay()` from 8 threads. Done = the task's
`celery-task-meta-<id>` result key exists; verified by reading every result state
(SUCCESS). Celery records no enqueue time, so no latency is reported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import _common as common
from celery import Celery
from redis import Redis

SYSTEM = "celery"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1")

app = Celery("celery_peer", broker=URL, backend=URL)
app.conf.update(task_ignore_result=False, result_expires=3600, broker_connection_retry=True,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="noop")
def noop(payload: str) -> None:
    return None


def body(args: Any) -> dict[str, Any]:
    procs = max(args.procs, 1)
    cli = str(Path(sys.executable).parent / "celery")
    data = common.payload(args.payload_bytes)
    redis = Redis.from_url(args.url)
    cmd = [cli, "-A", "celery_peer", "worker", "--pool", "prefork", "--concurrency",
           str(procs), "--without-gossip", "--without-mingle", "--without-heartbeat",
           "--loglevel", "WARNING"]
    with common.Workers([cmd]) as workers:
        warm = noop.delay("warm-up")
        warm.get(timeout=60)
        workers.check()
        ids: list[str | None] = [None] * args.n
        pending: list[str] = []
        done = 0

        def submit_one(i: int) -> None:
            task_id = noop.delay(data).id
            ids[i] = task_id
            pending.append(task_id)

        def done_count() -> int:
            nonlocal done, pending
            head = pending[:500]
            if head:
                pipe = redis.pipeline(transaction=False)
                for task_id in head:
                    pipe.exists(f"celery-task-meta-{task_id}")
                flags = pipe.execute()
                left = [t for t, f in zip(head, flags, strict=True) if not f]
                done += len(head) - len(left)
                pending[: len(head)] = left
            return done

        submit_s, e2e_s = common.drive_threads(args, submit_one, done_count, workers=workers)
    ok = sum(1 for task_id in ids if task_id and app.AsyncResult(task_id).state == "SUCCESS")
    return common.result(
        SYSTEM, args, submit_s=submit_s, e2e_s=e2e_s, completed=ok, verified=ok == args.n,
        latency_source="not recorded by celery",
        config={"worker": "celery worker, prefork", "concurrency": procs,
                "submit_threads": min(args.concurrency, common.SYNC_SUBMIT_THREADS)},
        versions_=common.versions("celery", "kombu", "redis", "hiredis"))


if __name__ == "__main__":
    common.run_main(body, SYSTEM)
