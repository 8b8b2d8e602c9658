"""RQ peer: N no-op jobs through `rq worker-pool` (RQ's default worker class, one per core).

RQ's default `Worker` forks a work horse per job (its documented, recommended mode); jobs
are enqueued with `Queue.enqueue` from 8 threads (RQ's client is synchronous). Done = the
size of the queue's FinishedJobRegistry; verified by fetching every job (status
`finished`); latency = RQ's own `enqueued_at` -> `ended_at`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import _common as common
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

SYSTEM = "rq"


def noop(payload: str) -> None:
    return None


def body(args: Any) -> dict[str, Any]:
    procs = max(args.procs, 1)
    cli = str(Path(sys.executable).parent / "rq")
    data = common.payload(args.payload_bytes)
    redis = Redis.from_url(args.url)
    queue = Queue("default", connection=redis)
    cmd = [cli, "worker-pool", "-n", str(procs), "--url", args.url, "-q", "default"]
    with common.Workers([cmd]) as workers:
        warm = queue.enqueue("rq_peer.noop", "warm-up", job_id="warm-up")
        common.wait_until(lambda: int(warm.get_status(refresh=True) == JobStatus.FINISHED), 1,
                          60, workers=workers)
        registry = queue.finished_job_registry
        base = registry.count

        def submit_one(i: int) -> None:
            queue.enqueue("rq_peer.noop", data, job_id=f"j{i}", result_ttl=3600)

        submit_s, e2e_s = common.drive_threads(
            args, submit_one, lambda: registry.count - base, workers=workers)
    ok = 0
    samples: list[float] = []
    ids = [f"j{i}" for i in range(args.n)]
    for start in range(0, args.n, 1000):
        for job in Job.fetch_many(ids[start:start + 1000], connection=redis):
            if job is not None and job.get_status(refresh=False) == JobStatus.FINISHED:
                ok += 1
                if job.enqueued_at and job.ended_at:
                    samples.append((job.ended_at - job.enqueued_at).total_seconds() * 1000)
    return common.result(
        SYSTEM, args, submit_s=submit_s, e2e_s=e2e_s, completed=ok, verified=ok == args.n,
        latency_ms=common.percentiles(samples),
        latency_source="RQ job enqueued_at -> ended_at",
        config={"worker": "rq worker-pool (default Worker: fork per job)", "processes": procs,
                "submit_threads": min(args.concurrency, common.SYNC_SUBMIT_THREADS)},
        versions_=common.versions("rq", "redis", "hiredis"))


if __name__ == "__main__":
    common.run_main(body, SYSTEM)
