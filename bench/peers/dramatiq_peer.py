"""Dramatiq peer: N no-op messages through the Redis broker and the `dramatiq` CLI worker.

Workers: `dramatiq dramatiq_peer --processes P --threads workers/P` (its defaults are one
process per core and 8 threads). Messages are sent with `actor.send` from 8 threads.
Done = the message left the queue's `.msgs` hash (Dramatiq deletes it on ack); verified
through the Results middleware (Redis backend: every message has a stored result).
Dramatiq records no completion time, so no latency is reported.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import _common as common
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend
from redis import Redis

SYSTEM = "dramatiq"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1")

broker = RedisBroker(url=URL)
backend = RedisBackend(url=URL)
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(store_results=True, max_retries=0)
def noop(payload: str) -> None:
    return None


def body(args: Any) -> dict[str, Any]:
    procs = max(args.procs, 1)
    threads = max(args.workers // procs, 1)
    cli = str(Path(sys.executable).parent / "dramatiq")
    data = common.payload(args.payload_bytes)
    redis = Redis.from_url(args.url)
    cmd = [cli, "dramatiq_peer", "--processes", str(procs), "--threads", str(threads)]
    with common.Workers([cmd]) as workers:
        warm = noop.send("warm-up")
        warm.get_result(backend=backend, block=True, timeout=60_000)
        workers.check()
        messages: list[Any] = [None] * args.n
        msgs_key = "dramatiq:default.msgs"

        def submit_one(i: int) -> None:
            messages[i] = noop.send(data)

        def done_count() -> int:
            sent = sum(1 for m in messages if m is not None)
            return sent - int(redis.hlen(msgs_key))

        submit_s, e2e_s = common.drive_threads(args, submit_one, done_count, workers=workers)
    ok = 0
    for message in messages:
        try:
            message.get_result(backend=backend, block=False)
            ok += 1
        except dramatiq.results.ResultMissing:
            pass
    return common.result(
        SYSTEM, args, submit_s=submit_s, e2e_s=e2e_s, completed=ok, verified=ok == args.n,
        latency_source="not recorded by dramatiq",
        config={"worker": "dramatiq CLI", "processes": procs, "threads": threads,
                "results": "RedisBackend", "submit_threads": min(args.concurrency,
                                                                 common.SYNC_SUBMIT_THREADS)},
        versions_=common.versions("dramatiq", "redis", "hiredis"))


if __name__ == "__main__":
    common.run_main(body, SYSTEM)
