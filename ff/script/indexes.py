"""Typed wrapper for index maintenance (lua/indexes.lua)."""

from __future__ import annotations

import msgspec

from ff.core.keys import IndexKeys
from ff.script.library import FunctionLibrary


class ReconcilePage(msgspec.Struct, frozen=True):
    """One checked page: where the next starts ("" when done), how many were checked,
    and per problem the execution and what was found (`missing_core`, or the lane index
    it was added back to)."""

    next_after: str
    checked: int
    problems: dict[str, str]


async def reconcile_indexes(lib: FunctionLibrary, partition: int, *, after: str,
                            page_size: int) -> ReconcilePage:
    reply = await lib.call("ff_reconcile_indexes", (IndexKeys(partition).all_executions,),
                           (after, page_size))
    return reply.into(ReconcilePage)


async def upgrade_id_index(lib: FunctionLibrary, partition: int) -> int:
    """Converts a partition's id index kept as a SET (before library release 3) into
    the id-ordered ZSET; returns how many ids moved."""
    reply = await lib.call("ff_upgrade_id_index", (IndexKeys(partition).all_executions,), ())
    return int(reply.first())


async def upgrade_terminal_counts(lib: FunctionLibrary, partition: int, lane_id: str) -> int:
    """Counts a lane's terminal outcomes from the records where an older release left no
    counters; returns how many executions were counted."""
    idx = IndexKeys(partition)
    reply = await lib.call("ff_upgrade_terminal_counts",
                           (idx.lane(lane_id, "terminal"), idx.lane(lane_id, "terminal_counts")),
                           ())
    return int(reply.first())
