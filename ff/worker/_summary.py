"""`TaskCounts`: what a worker did, logged as one info line per interval.

At thousands of tasks per second a line per task costs CPU and buries the lines that matter,
so per-task lines are debug; at info a busy worker says how it is doing once per interval:

    {"msg": "worker summary", "done": 5120, "failed": 3, "in_flight": 16, "rate": 512.0, ...}

What lives here: the counters (bumped where a task gives its slot back, `Worker`'s one
release point) and the loop that logs and resets them. What must not: claiming, leases.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

log = logging.getLogger("ff.worker")

# Task outcomes (`ClaimedTask.outcome`) that are not failures: the execution completed, or
# the handler gave it back on purpose (cancelled it, delayed it).
_NOT_FAILED = frozenset({"suspend", "complete", "cancel", "delay"})


class TaskCounts:
    """Tasks ended since the last summary line, and how many of them failed."""

    def __init__(self) -> None:
        self.done = 0
        self.failed = 0

    def ended(self, outcome: str | None) -> None:
        """Count one task that ended with `outcome` (None: it lost its lease)."""
        self.done += 1
        if outcome not in _NOT_FAILED:
            self.failed += 1

    async def log_every(self, interval: float, in_flight: Callable[[], int]) -> None:
        """Every `interval` seconds, one info line with the counts (then reset) and the
        rate; a worker with nothing done and nothing in flight stays silent."""
        last = trio.current_time()
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            done, failed, running = self.done, self.failed, in_flight()
            self.done = self.failed = 0
            if done or running:
                log.info("worker summary", extra={
                    "done": done, "failed": failed, "in_flight": running,
                    "rate": round(done / (now - last), 1), "interval_s": round(now - last, 3)})
            last = now
