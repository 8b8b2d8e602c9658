"""Typed wrapper for lane work hints (lua/lanes.lua)."""

from __future__ import annotations

from ff.core.keys import lane_work_hint
from ff.script.library import FunctionLibrary


async def drop_lane_hint(lib: FunctionLibrary, lane_id: str, home_partition: int, *,
                         partition: int, score: float) -> bool:
    """Removes `partition` from the lane's hints unless it was marked again since it was
    read with `score`. True if removed."""
    reply = await lib.call("ff_drop_lane_hint", (lane_work_hint(lane_id, home_partition),),
                           (partition, int(score)))
    return reply.first() == "1"
