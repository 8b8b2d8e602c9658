"""The lane_hints scanner: puts back the work hints a producer failed to write.

A producer marks a partition in the lane's hints after the call that made work claimable
there, in a second command (the hint lives under another hash tag). Work that became
claimable without a mark (a crash between the two, a delayed execution promoted, a lost
lease made reclaimable, a retry) is found here: one pipelined read of every partition's
eligible and reclaimable heads per lane, and a mark for each partition that has work and
no hint. Marks only add, so several servers may run it at once.
"""

from __future__ import annotations

from ff.core.keys import IndexKeys, lane_work_hint
from ff.engine.runner import Scanner, pipelined
from ff.scheduler import mark_lane_work
from ff.script.library import text


class LaneHintScanner(Scanner):
    name = "lane_hints"

    async def cycle(self, now_ms: int) -> int:
        partitions = self.engine.partitions
        n = partitions.num_flow_partitions
        marked = 0
        for lane in await self.engine.known_lanes():
            hinted = await self.client.execute(
                "ZRANGE", lane_work_hint(lane, partitions.lane_partition(lane)), 0, -1)
            known = {int(text(p)) for p in hinted}
            heads = await pipelined(self.client, [
                ("ZRANGE", IndexKeys(p).lane(lane, index), 0, 0)
                for p in range(n) for index in ("eligible", "reclaimable")
            ])
            for p in range(n):
                if p not in known and (heads[2 * p] or heads[2 * p + 1]):
                    await mark_lane_work(self.client, partitions, lane, p)
                    marked += 1
        return marked
