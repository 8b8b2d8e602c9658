"""LogSummary: log a repeated failure once, then one line per interval with a count.

Why: a failure that every request hits (Valkey down, a bug on a hot route) would otherwise
write one line per request, thousands a second, and an outage would fill the disk. Callers
name what makes two events "the same" with a key from a small, bounded set (a route template
and an error kind, say); the message itself may vary and the first one of each interval is
what gets written.

Per key: the first event is logged at once and opens an interval. Events inside the interval
are only counted. The first event after it is logged with the count of those suppressed
(in the message and as `suppressed` / `suppressed_seconds` extra fields) and opens the next
interval. So a steady failure writes one line per interval, and the count of a burst's last
interval arrives with the next event of that key. No task or timer is involved: time is read
from `clock` (trio's by default, so tests can drive it with a MockClock).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import trio

__all__ = ["LogSummary"]


@dataclass(slots=True)
class _Interval:
    started: float
    suppressed: int = 0


class LogSummary:
    """Summarises repeated log events of `logger` per key, one line per `interval` seconds."""

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._open: dict[Hashable, _Interval] = {}

    def log(
        self, level: int, key: Hashable, msg: str, *args: Any, exc_info: bool = False
    ) -> None:
        """Log `msg % args` at `level` unless an event with `key` was logged this interval."""
        if not self.logger.isEnabledFor(level):
            return
        now = self._clock()
        current = self._open.get(key)
        if current is not None and now - current.started < self.interval:
            current.suppressed += 1
            return
        self._open[key] = _Interval(now)
        if current is None or current.suppressed == 0:
            self.logger.log(level, msg, *args, exc_info=exc_info)
            return
        seconds = round(now - current.started, 1)
        self.logger.log(
            level,
            f"{msg} (%d more like this suppressed in the last %.1f s)",
            *args,
            current.suppressed,
            seconds,
            exc_info=exc_info,
            extra={"suppressed": current.suppressed, "suppressed_seconds": seconds},
        )
