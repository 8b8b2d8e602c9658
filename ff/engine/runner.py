"""The scanner runtime: one trio task per scanner, supervised, on the server's clock.

A scanner cycle visits every partition of its family. Reads are pipelined across
partitions (one round trip per chunk instead of one per partition); each due item is then
handed to a library function that re-checks it, so several server replicas may scan at
once without changing outcomes.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

import trio

from ff import metrics
from ff.core.errors import FFError
from ff.resp import errors as resp_errors
from ff.transient import is_transient

log = logging.getLogger("ff.engine")

MIN_INTERVAL_S = 0.1
RESTART_DELAY_S = 1.0
PIPELINE_CHUNK = 64
FAILURES_BEFORE_BACKOFF = 3
BACKOFF_CYCLES = 10

SCANNER_CYCLES = metrics.Counter(
    "ff_scanner_cycle_total", "Completed scanner cycles.", ("scanner",)
)
SCANNER_ITEMS = metrics.Counter(
    "ff_scanner_items_total", "Items a scanner acted on.", ("scanner",)
)
SCANNER_ERRORS = metrics.Counter(
    "ff_scanner_errors_total", "Errors seen by scanners.", ("scanner",)
)
SCANNER_DURATION = metrics.Histogram(
    "ff_scanner_cycle_duration_seconds", "Duration of one scanner cycle.", ("scanner",)
)



def survivable(exc: BaseException) -> bool:
    """Errors a scanner lives through, retrying the item or partition next cycle: a
    transient failure, any other trouble talking to Valkey, or an answer of the library
    (the next cycle re-reads the state). Anything else is a bug and stops the server."""
    return is_transient(exc) or isinstance(exc, FFError | resp_errors.RespError)


async def server_time_ms(client) -> int:
    seconds, micros = await client.execute("TIME")
    return int(seconds) * 1000 + int(micros) // 1000


class FailureTracker:
    """Skips an item for a while after it failed several cycles in a row."""

    def __init__(self) -> None:
        self._failures: dict[str, int] = {}
        self._skip_until: dict[str, int] = {}
        self.cycle = 0

    def should_skip(self, item: str) -> bool:
        return self._skip_until.get(item, -1) > self.cycle

    def failed(self, item: str) -> None:
        count = self._failures.get(item, 0) + 1
        self._failures[item] = count
        if count >= FAILURES_BEFORE_BACKOFF:
            log.error("persistent failure on %s: skipping it for %d cycles", item, BACKOFF_CYCLES)
            self._skip_until[item] = self.cycle + BACKOFF_CYCLES
            self._failures.pop(item, None)

    def succeeded(self, item: str) -> None:
        self._failures.pop(item, None)
        self._skip_until.pop(item, None)

    def next_cycle(self) -> None:
        self.cycle += 1
        if len(self._skip_until) > 500:
            self._skip_until = {k: v for k, v in self._skip_until.items() if v > self.cycle}


class Scanner(ABC):
    """Base: subclasses implement `cycle(now_ms)` and return how many items they handled."""

    name = "scanner"

    def __init__(self, engine, interval_s: float) -> None:
        self.engine = engine
        self.interval_s = max(interval_s, MIN_INTERVAL_S)
        self.failures = FailureTracker()
        self.cycles = 0

    @property
    def client(self):
        return self.engine.client

    @property
    def library(self):
        return self.engine.library

    @abstractmethod
    async def cycle(self, now_ms: int) -> int:
        """Implemented by each subclass."""

    async def run_once(self) -> int:
        started = time.perf_counter()
        now = await server_time_ms(self.client)
        handled = await self.cycle(now)
        self.failures.next_cycle()
        self.cycles += 1
        SCANNER_CYCLES.labels(scanner=self.name).inc()
        SCANNER_ITEMS.labels(scanner=self.name).inc(handled)
        SCANNER_DURATION.labels(scanner=self.name).observe(time.perf_counter() - started)
        if handled:
            log.info("scan cycle complete", extra={"scanner": self.name, "handled": handled})
        return handled

    async def run(self) -> None:
        """Cycle forever; a failed cycle is logged and retried after a pause."""
        while True:
            started = trio.current_time()
            try:
                await self.run_once()
            except Exception as exc:
                if not survivable(exc):
                    raise
                SCANNER_ERRORS.labels(scanner=self.name).inc()
                log.warning("scanner %s cycle failed: %s", self.name, exc)
                await trio.sleep(RESTART_DELAY_S)
            await trio.sleep_until(started + self.interval_s)

    async def act(self, item: str, call) -> bool:
        """Runs one item's library call, tracking repeated failures of the same item."""
        if self.failures.should_skip(item):
            return False
        try:
            await call()
        except Exception as exc:
            if not survivable(exc):
                raise
            SCANNER_ERRORS.labels(scanner=self.name).inc()
            log.warning("scanner %s: %s failed: %s", self.name, item, exc)
            self.failures.failed(item)
            return False
        self.failures.succeeded(item)
        return True


async def pipelined(client, commands: Sequence[tuple]) -> list:
    """Runs read commands in chunks of one round trip each; results in order."""
    results: list = []
    for start in range(0, len(commands), PIPELINE_CHUNK):
        pipe = client.pipeline()
        for command in commands[start : start + PIPELINE_CHUNK]:
            pipe.execute_command(*command)
        results.extend(await pipe.run(raise_on_error=True))
    return results
