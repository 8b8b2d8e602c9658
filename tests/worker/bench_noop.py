"""Per-task overhead of the worker runtime: a no-op handler, one worker, in-process server.

    python -m tests.worker.bench_noop [--tasks 5000] [--concurrency 16] [--partitions 256]

Starts a private valkey-server, boots a Server (scanners off) on it, submits N solo
executions, then times one `Worker.run()` (scheduler in the worker) until all N are
completed. Per task that is: grant and lease (one FCALL, `ff_claim_next`, on the lane's
home partition) and complete (one FCALL). Also times the same N sequentially through
`claim_next()` + `complete()` (concurrency 1) to show the latency of one task's round
trips. Not collected by pytest (the name does not start with test_).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import trio

from ff.config import ServerConfig
from ff.core.partitions import PartitionConfig
from ff.core.records import CreateExecutionArgs
from ff.embedded import EmbeddedServer
from ff.server import Server
from ff.worker import ClaimedTask, Worker


async def submit_all(server: Server, count: int) -> None:
    async def some(n: int) -> None:
        for _ in range(n):
            await server.create_execution(CreateExecutionArgs(execution_kind="noop"))
    async with trio.open_nursery() as nursery:
        for _ in range(16):
            nursery.start_soon(some, count // 16)


async def bench(tasks: int, concurrency: int, partitions: int) -> None:
    tasks -= tasks % 16
    with tempfile.TemporaryDirectory() as tmp:
        valkey = EmbeddedServer(tmp)
        await valkey.start()
        try:
            config = ServerConfig(valkey_url=valkey.url, waitpoint_hmac_secret="ab" * 32,
                                  partitions=PartitionConfig(partitions, 2, 2),
                                  scanners_enabled=False)
            async with Server.running(config) as server:
                started = time.perf_counter()
                await submit_all(server, tasks)
                print(f"submit: {tasks} in {time.perf_counter() - started:.2f}s")
                done = 0
                finished = trio.Event()
                worker = Worker(valkey.url, worker_id="bench", max_concurrent=concurrency)

                @worker.handler("noop")
                async def noop(task: ClaimedTask, payload: object) -> None:
                    nonlocal done
                    done += 1
                    if done == tasks:
                        finished.set()

                async with trio.open_nursery() as nursery:
                    await nursery.start(lambda task_status: worker.run(
                        handle_signals=False, task_status=task_status))
                    started = time.perf_counter()
                    await finished.wait()
                    elapsed = time.perf_counter() - started
                    worker.stop()
                print(f"run(): {tasks} no-op tasks, concurrency {concurrency}, "
                      f"{partitions} partitions: {elapsed:.2f}s = {tasks / elapsed:.0f} tasks/s")

                sequential = min(tasks, 1000)
                await submit_all(server, sequential)
                async with Worker.connect(valkey.url, worker_id="seq") as one:
                    started = time.perf_counter()
                    for _ in range(sequential - sequential % 16):
                        task = await one.claim_next()
                        assert task is not None
                        await task.complete()
                    elapsed = time.perf_counter() - started
                n = sequential - sequential % 16
                print(f"claim_next()+complete() one at a time: {n / elapsed:.0f} tasks/s, "
                      f"{elapsed / n * 1e6:.0f} us per task")
                started = time.perf_counter()
                for _ in range(2000):
                    await server.client.execute("PING")
                ping = (time.perf_counter() - started) / 2000
                print(f"baseline: one PING round trip through the same client: "
                      f"{ping * 1e6:.0f} us")
        finally:
            await valkey.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--partitions", type=int, default=256)
    args = parser.parse_args()
    trio.run(bench, args.tasks, args.concurrency, args.partitions)


if __name__ == "__main__":
    main()
