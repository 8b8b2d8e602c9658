"""The worker module of the chaos test: a short handler that writes when it starts and when
it ends (with the lease epoch it holds) to the file named by `FF_CHAOS_JOURNAL`, so the test
can check that no two holders of one execution were ever live at once."""

from __future__ import annotations

import os
import random
import time

import trio

from ff.worker import ClaimedTask, Worker

worker = Worker(worker_id="chaos")
JOURNAL = os.environ.get("FF_CHAOS_JOURNAL", os.devnull)


def note(event: str, task: ClaimedTask) -> None:
    with open(JOURNAL, "a") as journal:
        journal.write(f"{event} {task.execution_id} {task.lease_epoch} {time.monotonic()}\n")


@worker.handler("chaos")
async def chaos(task: ClaimedTask, payload: object) -> str:
    note("S", task)
    await trio.sleep(random.uniform(0.1, 0.9))
    note("E", task)
    return "ok"
