"""A worker module for the process tests, run the way users run theirs:
`python -m ff.worker.cli tests.worker.procworker --valkey-url ... --lease-ttl-ms ...`."""

from __future__ import annotations

import trio

from ff.worker import ClaimedTask, Worker

worker = Worker(worker_id="proc")


@worker.handler("slow")
async def slow(task: ClaimedTask, payload: dict[str, float]) -> dict[str, float]:
    await trio.sleep(payload["seconds"])
    return {"slept": payload["seconds"]}


@worker.handler("hang")
async def hang(task: ClaimedTask, payload: object) -> None:
    await trio.sleep_forever()
