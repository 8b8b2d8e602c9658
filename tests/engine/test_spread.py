"""A lane's solo executions spread over partitions; claims find them through the lane's
work hints (and the window when a hint is missing); the lane_hints scanner repairs lost
marks; an idempotency key keeps a repeat on its first copy's partition."""

from __future__ import annotations

import pytest

from ff.core.ids import ExecutionId
from ff.core.keys import lane_work_hint
from ff.core.records import CreateExecutionArgs
from ff.script import lanes as lane_fns
from ff.script.library import text
from ff.server import Server
from tests.engine.conftest import TEST_PARTITIONS, claim, engine_config, submit

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

HINT = lane_work_hint("default", TEST_PARTITIONS.lane_partition("default"))


@pytest.fixture
async def spread_server(server_url: str):
    async with Server.running(engine_config(server_url, lane_spread=0)) as server:
        yield server


async def _hinted(server: Server) -> set[int]:
    return {int(text(p)) for p in await server.client.execute("ZRANGE", HINT, 0, -1)}


async def test_solo_executions_spread_and_are_each_claimed_once(spread_server: Server) -> None:
    eids = {await submit(spread_server) for _ in range(40)}
    partitions = {ExecutionId.parse(e).partition for e in eids}
    assert len(partitions) == TEST_PARTITIONS.num_flow_partitions
    assert await _hinted(spread_server) == partitions
    claimed = []
    while (lease := await claim(spread_server)) is not None:
        claimed.append(lease.execution_id)
    assert sorted(claimed) == sorted(eids)
    assert await _hinted(spread_server) == set()


async def test_work_without_a_mark_is_found_and_the_scanner_marks_it(
    spread_server: Server,
) -> None:
    eid = await submit(spread_server)
    await spread_server.client.execute("DEL", HINT)
    assert await spread_server.engine.scanner("lane_hints").run_once() == 1
    assert await _hinted(spread_server) == {ExecutionId.parse(eid).partition}
    await spread_server.client.execute("DEL", HINT)
    spread_server.scheduler._hints.clear()
    lease = await claim(spread_server)
    assert lease is not None and lease.execution_id == eid


async def test_a_partition_marked_again_is_not_dropped(spread_server: Server) -> None:
    await spread_server.client.execute("ZINCRBY", HINT, 1, 3)
    await spread_server.client.execute("ZINCRBY", HINT, 1, 3)
    home = TEST_PARTITIONS.lane_partition("default")
    assert not await lane_fns.drop_lane_hint(spread_server.library, "default", home,
                                             partition=3, score=1)
    assert await lane_fns.drop_lane_hint(spread_server.library, "default", home,
                                         partition=3, score=2)
    assert await _hinted(spread_server) == set()


async def test_an_idempotent_repeat_meets_its_first_copy(spread_server: Server) -> None:
    first = await submit(spread_server, idempotency_key="same")
    for _ in range(8):
        again = await spread_server.create_execution(
            CreateExecutionArgs(
                execution_kind="job", idempotency_key="same"))
        assert again.duplicate and again.execution_id == first
