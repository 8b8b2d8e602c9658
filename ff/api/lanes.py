"""Lanes: the registry of lanes and how many executions each holds per public state."""

from __future__ import annotations

from ff.api._parts import ServerParts
from ff.core.ids import validate_lane
from ff.core.keys import LANES, IndexKeys
from ff.core.partitions import PartitionConfig
from ff.core.states import PUBLIC_BY_OUTCOME, PUBLIC_STATE_BY_LIVE_INDEX, PublicState
from ff.resp import Client
from ff.script.library import text

_PUBLIC_BY_OUTCOME = {str(outcome): public for outcome, public in PUBLIC_BY_OUTCOME.items()}


async def list_lanes(client: Client) -> list[str]:
    return sorted(text(lane) for lane in await client.execute("SMEMBERS", LANES))


async def count_executions(client: Client, partitions: PartitionConfig,
                           lane: str) -> dict[str, int]:
    """Executions of `lane` per public state, summed over partitions from index sizes
    and the terminal outcome counters: one pipelined round, no scan of executions."""
    validate_lane(lane)
    live = tuple(PUBLIC_STATE_BY_LIVE_INDEX)
    pipe = client.pipeline()
    for p in range(partitions.num_flow_partitions):
        idx = IndexKeys(p)
        for name in live:
            pipe.execute_command("ZCARD", idx.lane(lane, name))
        pipe.execute_command("HGETALL", idx.lane(lane, "terminal_counts"))
    replies = await pipe.run(raise_on_error=True)
    counts = dict.fromkeys(map(str, PublicState), 0)
    per_partition = len(live) + 1
    for start in range(0, len(replies), per_partition):
        for name, size in zip(live, replies[start:start + len(live)], strict=True):
            counts[PUBLIC_STATE_BY_LIVE_INDEX[name]] += size
        for outcome, count in replies[start + len(live)].items():
            public = _PUBLIC_BY_OUTCOME.get(text(outcome))
            if public is not None:
                counts[public] += int(count)
    return counts


class LanesApi(ServerParts):
    async def list_lanes(self) -> list[str]:
        """Every lane an execution was created in or a server was configured with."""
        return await list_lanes(self._client)

    async def count_executions(self, lane: str) -> dict[str, int]:
        """Executions of `lane` per public state (every state present, 0 when none)."""
        return await count_executions(self._client, self._config.partitions, lane)
