"""The engine: the background scanners of one server, run in one nursery.

`Engine.run` is started in the server's engine nursery; cancelling that nursery's scope
stops every scanner. Nothing here is spawned outside it.
"""

from __future__ import annotations

import trio

from ff.config import ServerConfig
from ff.core.keys import LANES
from ff.engine.flows import CompletionListener
from ff.engine.runner import Scanner
from ff.engine.scanners import SCANNER_TYPES
from ff.engine.waitpoints import PendingWaitpointExpiryScanner, SuspensionTimeoutScanner
from ff.script.library import FunctionLibrary, text

LANES_CACHE_S = 1.0
ALL_SCANNERS: tuple[type[Scanner], ...] = (
    *SCANNER_TYPES, SuspensionTimeoutScanner, PendingWaitpointExpiryScanner)


class Engine:
    def __init__(self, client, library: FunctionLibrary, config: ServerConfig) -> None:
        self.client = client
        self.library = library
        self.config = config
        self.partitions = config.partitions
        intervals = config.intervals
        self.scanners: list[Scanner] = [
            scanner_type(self, getattr(intervals, scanner_type.name))
            for scanner_type in ALL_SCANNERS
        ]
        self.completions = CompletionListener(client, library, config.partitions)
        self._lanes: list[str] = list(config.lanes)
        self._lanes_read_at = -LANES_CACHE_S

    def scanner(self, name: str) -> Scanner:
        return next(s for s in self.scanners if s.name == name)

    async def known_lanes(self) -> list[str]:
        """Configured lanes plus every lane an execution was ever created on."""
        if trio.current_time() - self._lanes_read_at >= LANES_CACHE_S:
            registered = await self.client.execute("SMEMBERS", LANES)
            self._lanes = sorted(set(self.config.lanes) | {text(x) for x in registered})
            self._lanes_read_at = trio.current_time()
        return self._lanes

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for scanner in self.scanners:
                nursery.start_soon(scanner.run, name=f"ff-scanner-{scanner.name}")
            task_status.started()
