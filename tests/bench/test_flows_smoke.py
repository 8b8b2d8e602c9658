"""Smoke test of the flow benchmarks (scenarios 4 and 6) at a tiny size."""

from __future__ import annotations

from bench import flows
from bench.harness import median_rows


async def test_scenario4_small(server_url: str) -> None:
    base = await flows.scenario4_baseline(server_url, 3, 2)
    ff = await flows.scenario4_ff(server_url, 3, 2)
    assert base["flows"] == ff["flows"] == 3
    assert ff["flows_per_s"] > 0 and ff["stage_latency_p50_ms"] >= 0


async def test_scenario6_small(server_url: str) -> None:
    base = await flows.scenario6_baseline(server_url, 10, 1)
    ff = await flows.scenario6_ff(server_url, 10, 1)
    assert base["p99_ms"] > 0 and ff["p99_ms"] > 0


def test_medians_and_markdown() -> None:
    runs = [[{"system": "ff", "n": 10, "p99_ms": 1.0}], [{"system": "ff", "n": 10, "p99_ms": 3.0}],
            [{"system": "ff", "n": 10, "p99_ms": 2.0}]]
    medians = median_rows(runs)
    assert medians == [{"system": "ff", "n": 10, "p99_ms": 2.0}]
    text = flows.markdown({"scenario": "scenario6", "git_sha": "x", "timestamp_utc": "t",
                           "host": {}, "python": "3", "valkey_version": "v", "runs": runs,
                           "median": medians})
    assert "| ff | 10 | 2.00 |" in text
