"""The scheduler's rotating partition window, on trio's clock (no network)."""

from __future__ import annotations

import trio

from ff.core.partitions import PartitionConfig
from ff.scheduler import MAX_PARTITIONS_PER_SCAN, ROTATION_WINDOW_MS, Scheduler


def _scheduler(partitions: int = 256) -> Scheduler:
    return Scheduler(None, None, PartitionConfig(num_flow_partitions=partitions))  # type: ignore[arg-type]


async def test_the_window_moves_every_rotation_period_and_covers_every_partition(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scheduler = _scheduler()
    first = scheduler.window("wi-a")
    assert len(first) == MAX_PARTITIONS_PER_SCAN
    assert scheduler.window("wi-a") == first  # same period, same window
    covered = set()
    for _ in range(256 // MAX_PARTITIONS_PER_SCAN):
        covered |= set(scheduler.window("wi-a"))
        await trio.sleep(ROTATION_WINDOW_MS / 1000)
    assert covered == set(range(256))


async def test_workers_start_at_different_partitions(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts = {_scheduler().window(f"wi-{i}")[0] for i in range(20)}
    assert len(starts) > 10


async def test_a_small_deployment_scans_each_partition_once_per_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    assert sorted(_scheduler(4).window("wi-a")) == [0, 1, 2, 3]
