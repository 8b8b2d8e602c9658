"""Dependency resolution on a real server: fan-out/fan-in with data passing, skip
propagation, any_of and quorum joins with cancel_remaining, replay, the reconciler."""

from __future__ import annotations

import pytest
import trio

from ff.core.ids import ExecutionId
from ff.core.keys import IndexKeys, lane_work_hint
from ff.core.partitions import PartitionConfig
from ff.script import execution as execution_fns
from ff.script import flow as flow_fns
from ff.server import Server
from tests.engine.conftest import claim, engine_config, fence
from tests.flows.conftest import Dag

pytestmark = pytest.mark.compat


async def test_fan_out_fan_in_passes_the_upstream_result(server: Server) -> None:
    dag = await Dag.create(server)
    for name in "abcd":
        await dag.node(name, input_payload="orig")
    await dag.edge("a", "b")
    await dag.edge("a", "c")
    await dag.edge("b", "d", data=True)
    await dag.edge("c", "d")
    assert [await dag.state(n) for n in "abcd"] == [
        "waiting", "waiting_children", "waiting_children", "waiting_children"]
    await dag.run("a")
    await dag.wait_for("b", "waiting")
    await dag.wait_for("c", "waiting")
    await dag.run("b", result=b"from-b")
    await dag.wait_for("b", "completed")
    await trio.sleep(0.1)
    assert await dag.state("d") == "waiting_children"
    await dag.run("c", result=b"from-c")
    await dag.wait_for("d", "waiting")
    assert await dag.run("d") == b"from-b"
    info = await server.get_flow(dag.flow_id)
    assert info.counts == {"completed": 4}
    members = await server.list_flow_members(dag.flow_id)
    d = next(m for m in members.members if m.execution_kind == "d")
    assert sorted(e.state for e in d.edges) == ["satisfied", "satisfied"]


async def test_failed_upstream_skips_the_child_and_its_descendants(server: Server) -> None:
    dag = await Dag.create(server)
    for name in ("a", "b", "c", "d", "e"):
        await dag.node(name)
    await dag.edge("a", "c")
    await dag.edge("b", "c")
    await dag.edge("c", "d")
    await dag.edge("d", "e")
    await dag.run("b")
    await dag.run("a", fail=True)
    for name in "cde":
        await dag.wait_for(name, "skipped")
    assert await dag.state("b") == "completed"


@pytest.mark.parametrize(("policy", "k"), [("any_of", None), ("quorum", 2)])
async def test_join_with_cancel_remaining_cancels_the_last_sibling(
        server: Server, policy: str, k: int | None) -> None:
    dag = await Dag.create(server)
    for name in ("u1", "u2", "u3", "join"):
        await dag.node(name)
    await dag.join("join", policy, k=k, on_satisfied="cancel_remaining")
    for up in ("u1", "u2", "u3"):
        await dag.edge(up, "join", data=True)
    await dag.run("u1", result=b"one")
    if policy == "quorum":
        await trio.sleep(0.1)
        assert await dag.state("join") == "waiting_children"
        await dag.run("u2", result=b"two")
    await dag.wait_for("join", "waiting")
    await dag.wait_for("u3", "cancelled")
    expected = b"one" if policy == "any_of" else b"two"
    assert await dag.run("join") == expected
    if policy == "any_of":
        await dag.wait_for("u2", "cancelled")
    tag = ExecutionId.parse(dag.ids["join"]).tag
    pending = await server.client.execute("SCARD", IndexKeys(tag).pending_cancel_groups)
    assert pending == 0


async def test_quorum_impossible_skips_the_child(server: Server) -> None:
    dag = await Dag.create(server)
    for name in ("u1", "u2", "u3", "join"):
        await dag.node(name)
    await dag.join("join", "quorum", k=2, on_satisfied="let_run")
    for up in ("u1", "u2", "u3"):
        await dag.edge(up, "join")
    await dag.run("u1", fail=True)
    await trio.sleep(0.05)
    assert await dag.state("join") == "waiting_children"
    await dag.run("u2", fail=True)
    await dag.wait_for("join", "skipped")
    assert await dag.state("u3") == "waiting"  # let_run leaves it alone


async def test_replay_of_a_skipped_member_re_resolves_its_edges(server: Server) -> None:
    dag = await Dag.create(server)
    for name in ("a", "b", "c"):
        await dag.node(name)
    await dag.edge("a", "b", data=True)
    await dag.edge("b", "c")
    await dag.run("a", fail=True)
    await dag.wait_for("c", "skipped")
    assert await server.replay_execution(dag.ids["b"]) == "skipped"  # a is still failed
    assert await server.replay_execution(dag.ids["a"]) == "waiting"
    await dag.run("a", result=b"again")
    assert await server.replay_execution(dag.ids["b"]) == "waiting"
    assert await dag.run("b") == b"again"
    assert await server.replay_execution(dag.ids["c"]) == "waiting"


async def test_an_edge_to_an_upstream_that_already_ended_resolves_at_once(
        server: Server) -> None:
    dag = await Dag.create(server)
    await dag.node("a")
    await dag.node("b", hold=True)
    await dag.node("c", hold=True)
    assert await dag.state("b") == "waiting_children"
    await dag.run("a", result=b"early")
    await dag.edge("a", "b", data=True)
    assert await dag.state("b") == "waiting"
    assert await dag.run("b") == b"early"
    await dag.edge("b", "c")
    assert await dag.state("c") == "waiting"


async def test_a_promoted_child_is_claimable_at_once_outside_the_scheduler_window(
        server_url: str) -> None:
    """Resolution hints the lanes of the children it made eligible: a claim finds the
    child at once, not only when its partition enters the worker's window or at the next
    lane_hints cycle (a 10-stage chain waited up to a second per stage)."""
    config = engine_config(server_url, partitions=PartitionConfig(256, 2, 2), lane_spread=0)
    async with Server.running(config) as server:
        dag = await Dag.create(server)
        await dag.node("a")
        await dag.node("b")
        await dag.edge("a", "b")
        partition = ExecutionId.parse(dag.ids["b"]).partition
        worker = next(w for w in (f"w{i}" for i in range(1000))
                      if (partition - server.scheduler.window(f"{w}-i")[0]) % 256 >= 96)
        first = await claim(server, worker)
        assert first is not None and first.execution_id == dag.ids["a"]
        assert await claim(server, worker) is None  # nothing else: the hint is dropped
        await execution_fns.complete_execution(server.library, first.execution_id,
                                               result=b"", **fence(first))
        hints = lane_work_hint("default", server.config.partitions.lane_partition("default"))
        with trio.fail_after(5):
            while await server.client.execute("ZSCORE", hints, partition) is None:
                await trio.sleep(0.01)
        second = await claim(server, worker)
        assert second is not None and second.execution_id == dag.ids["b"]


async def test_the_dependency_reconciler_resolves_without_notifications(
        server_url: str) -> None:
    config = engine_config(server_url, completion_listener=False)
    async with Server.running(config) as server:
        dag = await Dag.create(server)
        await dag.node("a")
        await dag.node("b")
        await dag.edge("a", "b")
        await dag.run("a")
        await trio.sleep(0.05)
        assert await dag.state("b") == "waiting_children"
        assert await server.engine.scanner("dependency_reconciler").run_once() == 1
        assert await dag.state("b") == "waiting"
        assert await server.engine.scanner("dependency_reconciler").run_once() == 0


async def test_the_edge_cancel_dispatcher_cancels_siblings_left_behind(
        server_url: str) -> None:
    config = engine_config(server_url, completion_listener=False)
    async with Server.running(config) as server:
        dag = await Dag.create(server)
        for name in ("u1", "u2", "join"):
            await dag.node(name)
        await dag.join("join", "any_of", on_satisfied="cancel_remaining")
        await dag.edge("u1", "join")
        await dag.edge("u2", "join")
        await dag.run("u1")
        resolution = await flow_fns.resolve_dependency(server.library, dag.ids["join"])
        assert resolution.cancel_groups == [dag.ids["join"]]
        assert await dag.state("join") == "waiting"
        assert await dag.state("u2") == "waiting"
        await server.engine.scanner("edge_cancel_dispatcher").run_once()
        assert await dag.state("u2") == "cancelled"
        reconciler = server.engine.scanner("edge_cancel_reconciler")
        assert await reconciler.run_once() == 0


async def test_a_running_child_is_skipped_and_its_lease_released(server: Server) -> None:
    dag = await Dag.create(server)
    await dag.node("a")
    await dag.node("b")
    edge = await dag.edge("a", "b")
    assert edge
    await execution_fns.cancel_execution(server.library, dag.ids["a"], reason="x",
                                         source="operator_override")
    await dag.wait_for("b", "skipped")


async def test_flow_transitions_match_the_state_table(server: Server) -> None:
    from tests.engine.test_lifecycle import assert_matches_transition
    dag = await Dag.create(server)
    for name in ("a", "b", "c"):
        await dag.node(name)
    await dag.node("held", hold=True)
    await assert_matches_transition(server, dag.ids["held"], "ff_add_execution_to_flow")
    await dag.edge("a", "b")
    await dag.edge("b", "c")
    await assert_matches_transition(server, dag.ids["b"], "ff_apply_dependency_to_child")
    await dag.run("a", fail=True)
    await dag.wait_for("c", "skipped")
    await assert_matches_transition(server, dag.ids["b"], "ff_resolve_dependency")
    await server.replay_execution(dag.ids["a"])
    await dag.run("a")
    await server.replay_execution(dag.ids["b"])
    await assert_matches_transition(server, dag.ids["b"], "ff_resolve_dependency")
    assert await server.replay_execution(dag.ids["c"]) == "waiting_children"
    await assert_matches_transition(server, dag.ids["c"], "ff_replay_execution")
