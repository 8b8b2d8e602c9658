"""The one range rule for millisecond values: timestamps and durations alike.

Every field that carries milliseconds (epoch timestamps such as `delay_until`, `now`,
`execution_deadline_at`; durations such as `grant_ttl_ms` and the policy timeouts) uses
`Millis`, so decoding rejects a value outside 0..`MAX_MILLIS` before anything is written.

Why this bound: the function library does its arithmetic in Lua numbers (doubles) and formats
them with `%.0f`; above 2^53 integers are no longer exact, and a negative or huge timestamp
turns into nonsense scores. `MAX_MILLIS` is the last millisecond of the year 9999, about
2^47.9, so a timestamp plus a duration (both <= `MAX_MILLIS`) still stays far below 2^53.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["MAX_MILLIS", "Millis"]

# 9999-12-31T23:59:59.999Z in milliseconds since the Unix epoch.
MAX_MILLIS = 253_402_300_799_999

Millis = Annotated[
    int,
    msgspec.Meta(
        ge=0,
        le=MAX_MILLIS,
        description="milliseconds (epoch time or duration), 0..253402300799999 (year 9999)",
    ),
]
