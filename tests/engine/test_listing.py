"""list_executions: cursor pages over the partition's id index, and the filter form
finding an execution by public state whichever lane index holds it."""

from __future__ import annotations

import pytest

from ff.core.ids import ExecutionId
from ff.core.policy import ExecutionPolicy, RoutingRequirements
from ff.script import scheduling as scheduling_fns
from ff.server import Server
from tests.engine.conftest import claim, submit

pytestmark = pytest.mark.compat


async def test_cursor_pages_cover_the_partition_in_id_order_once(server: Server) -> None:
    ids = sorted([await submit(server) for _ in range(7)])
    partition = ExecutionId.parse(ids[0]).partition
    seen, cursor = [], None
    while True:
        page = await server.list_executions(partition, cursor=cursor, limit=3)
        seen += page.executions
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids
    assert (await server.list_executions(partition, limit=0)).executions == []


async def test_state_filter_finds_blocked_executions_in_every_index(server: Server) -> None:
    eligible = await submit(server)
    operator = await submit(server)
    quota = await submit(server)
    budget = await submit(server)
    await scheduling_fns.block_for_admission(server.library, operator, "paused_by_operator")
    await scheduling_fns.block_for_admission(server.library, quota, "waiting_for_quota")
    await scheduling_fns.block_for_admission(server.library, budget, "waiting_for_budget")
    routed = await submit(server, policy=ExecutionPolicy(
        routing_requirements=RoutingRequirements(required_capabilities=["gpu"])))
    assert await claim(server) is not None  # takes `eligible`, parks `routed` on the way
    assert await server.get_execution_state(routed) == "waiting"
    partition = ExecutionId.parse(eligible).partition

    async def listed(state: str) -> set[str]:
        page = await server.list_executions(partition, lane="default", state=state)
        return set(page.executions)

    assert await listed("waiting") == {operator, routed}
    assert await listed("rate_limited") == {quota, budget}
    assert await listed("active") == {eligible}
    assert await listed("resumable") == set()  # a public state no index holds


async def test_offset_counts_across_the_indexes_of_a_state(server: Server) -> None:
    ids = [await submit(server) for _ in range(4)]
    for eid in ids[2:]:
        await scheduling_fns.block_for_admission(server.library, eid, "paused_by_operator")
    partition = ExecutionId.parse(ids[0]).partition
    pages = [
        (await server.list_executions(partition, lane="default", state="waiting",
                                      offset=offset, limit=1)).executions
        for offset in range(5)
    ]
    assert {p[0] for p in pages[:2]} == set(ids[:2])  # eligible first, then blocked
    assert {p[0] for p in pages[2:4]} == set(ids[2:]) and pages[4] == []
