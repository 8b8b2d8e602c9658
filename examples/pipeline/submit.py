"""Builds the pipeline flow with the DAG builder, submits it over HTTP and waits for the
report. Run `ff serve` and `ff worker worker` in this directory first."""

from __future__ import annotations

import sys

import trio

from ff.client import ApiClient
from ff.dag import Flow, Node


def build() -> tuple[Flow, dict[str, Node]]:
    flow = Flow("pipeline")
    fetch = flow.node("fetch", '{"source": "demo"}', payload_encoding="json")
    analyses = [flow.node(kind, payload_encoding="json")
                for kind in ("word_stats", "line_stats", "slow_summary")]
    report = flow.node("report", payload_encoding="json")
    for analysis in analyses:
        flow.edge(fetch, analysis, data=True)   # each analysis reads fetch's result
        flow.edge(analysis, report, data=True)  # the report reads the deciding analysis
    flow.join(report, "quorum", k=2, on_satisfied="cancel_remaining")
    nodes = {node.kind: node for node in (fetch, *analyses, report)}
    return flow, nodes


async def main(url: str = "http://127.0.0.1:9090") -> None:
    flow, nodes = build()
    async with ApiClient(url) as api:
        submitted = await flow.submit(api)
        print("flow", submitted.flow_id)
        report_id = nodes["report"].execution_id or ""
        with trio.fail_after(60):
            while await api.get_execution_state(report_id) != "completed":
                await trio.sleep(0.1)
        for kind, node in nodes.items():
            state = await api.get_execution_state(node.execution_id or "")
            print(f"{kind:13} {state}")
        result = await api.get_execution_result(report_id)
        print("report:", (result or b"").decode())


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:])
