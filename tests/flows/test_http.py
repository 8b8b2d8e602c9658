"""The flow routes and the DAG builder over HTTP."""

from __future__ import annotations

import json

import pytest
import trio

from ff.client import ApiClient
from ff.core.flow_records import CancelFlowArgs, EdgeGroupPolicyArgs
from ff.dag import Flow
from tests.api.conftest import running_api, writes
from tests.flows.conftest import Dag

pytestmark = pytest.mark.compat


async def test_builder_quorum_pipeline_end_to_end(server_url: str) -> None:
    async with running_api(server_url) as api, ApiClient(api.url) as client:
        flow = Flow("pipeline")
        fetch = flow.node("fetch", payload=b"input")
        steps = [flow.node("step", payload=str(i)) for i in range(3)]
        merge = flow.node("merge")
        final = flow.node("final")
        for step in steps:
            fetch >> step
            flow.edge(step, merge, data=True)
        flow.join(merge, "quorum", k=2, on_satisfied="cancel_remaining")
        flow.edge(merge, final, data=True)
        submitted = await flow.submit(client)
        dag = Dag(api.server, submitted.flow_id)
        dag.ids = {"fetch": fetch.execution_id or "", "merge": merge.execution_id or "",
                   "final": final.execution_id or "",
                   **{f"s{i}": s.execution_id or "" for i, s in enumerate(steps)}}
        assert await client.get_execution_state(dag.ids["s0"]) == "waiting_children"
        assert await dag.run("fetch") == b"input"
        for name in ("s0", "s1", "s2"):
            await dag.wait_for(name, "waiting")
        await dag.run("s0", result=b"r0")
        await dag.run("s2", result=b"r2")
        await dag.wait_for("s1", "cancelled")
        assert await dag.run("merge", result=b"merged") == b"r2"
        await dag.wait_for("final", "waiting")
        assert await dag.run("final") == b"merged"
        info = await client.get_flow(submitted.flow_id)
        assert info.counts == {"completed": 5, "cancelled": 1}
        assert info.graph_revision == submitted.graph_revision
        members = await client.list_flow_members(submitted.flow_id)
        merge_row = next(m for m in members.members if m.execution_id == dag.ids["merge"])
        assert sorted(e.state for e in merge_row.edges) == [
            "impossible", "satisfied", "satisfied"]


async def test_routes_answer_bad_input_with_4xx_codes(server_url: str) -> None:
    async with running_api(server_url) as api, ApiClient(api.url) as client:
        flow = Flow()
        a, b = flow.node("a"), flow.node("b")
        a >> b
        submitted = await flow.submit(client)
        fid = submitted.flow_id
        before = await writes(api)
        raw = await api.raw()
        cases = [
            ("POST", f"/v1/flows/{fid}/edges", {"upstream_execution_id": b.execution_id,
             "downstream_execution_id": a.execution_id, "expected_graph_revision": 3},
             409, "cycle_detected"),
            ("POST", f"/v1/flows/{fid}/edges", {"upstream_execution_id": a.execution_id,
             "downstream_execution_id": b.execution_id, "expected_graph_revision": 1},
             409, "contention"),
            ("PUT", f"/v1/flows/{fid}/members/{b.execution_id}/edge-group",
             {"policy": "quorum", "k": 0}, 400, None),
            ("PUT", f"/v1/flows/{fid}/members/{b.execution_id}/edge-group",
             {"policy": "sometimes"}, 400, "invalid_body"),
            ("PUT", f"/v1/flows/{fid}/members/{b.execution_id}/edge-group",
             {"policy": "any_of", "on_satisfied": "let_run"}, 409,
             "edge_group_policy_already_fixed"),
            ("POST", "/v1/flows/not-a-uuid/cancel", {}, 400, None),
            ("POST", "/v1/flows/00000000-0000-4000-8000-000000000009/cancel", {}, 404, None),
            ("POST", f"/v1/flows/{fid}/cancel", {"cancellation_policy": "everything"}, 400,
             "invalid_body"),
            ("POST", f"/v1/flows/{fid}/members", {}, 400, None),
        ]
        for method, path, body, status, kind in cases:
            response = await raw.request(method, path, body=json.dumps(body).encode())
            assert response.status == status, (path, body, response.body)
            error = response.json()
            assert "error" in error
            if kind is not None:
                assert error.get("kind") == kind, error
        assert await writes(api) == before
        policy = await client.set_edge_group_policy(fid, a.execution_id or "",
                                                    EdgeGroupPolicyArgs(policy="any_of"))
        assert policy.Set is not None
        again = await client.set_edge_group_policy(fid, a.execution_id or "",
                                                   EdgeGroupPolicyArgs(policy="any_of"))
        assert again.already_set
        first = await client.cancel_flow(fid, CancelFlowArgs(reason="r"), wait=True)
        assert first.Cancelled is not None
        repeat = await client.cancel_flow(fid, CancelFlowArgs(reason="r"))
        assert repeat.Cancelled is not None
        assert sorted(repeat.Cancelled.member_execution_ids) == sorted(submitted.execution_ids)
        with trio.fail_after(5):
            assert {await client.get_execution_state(e) for e in submitted.execution_ids} == {
                "cancelled"}
