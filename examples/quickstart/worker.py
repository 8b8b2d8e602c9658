"""Quick-start worker: two handlers, run by `ff worker worker` from this directory.

Each handler gets the claimed task and its payload (decoded from JSON because submit.py
sends `payload_encoding: "json"`); what it returns becomes the execution's result.
"""

from __future__ import annotations

import trio

from ff.worker import ClaimedTask, Worker

worker = Worker(worker_id="quickstart", lanes=["default"], max_concurrent=8)


@worker.handler("greet")
async def greet(task: ClaimedTask, payload: dict[str, str]) -> dict[str, str]:
    return {"greeting": f"Hello, {payload['name']}!"}


@worker.handler("word_count")
async def word_count(task: ClaimedTask, payload: dict[str, str]) -> dict[str, int]:
    words = payload["text"].split()
    await task.update_progress(50, f"counting {len(words)} words")
    await trio.sleep(0.1)  # stands in for real work; the lease is renewed meanwhile
    return {"words": len(words), "distinct": len({w.lower() for w in words})}
