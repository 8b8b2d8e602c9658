"""Smoke test of the load-test harness (`bench/`): a small scenario-1 run, in-process, no peers.

Checks the report's fields and that the harness verified every execution completed exactly
once; plus the pure pieces (percentiles, medians, the worker split) and the CLI entry point.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import cli
from bench.harness import Progress, Report, RunConfig, SystemResult, percentiles

N = 200


async def test_scenario1_report_in_process(server_url: str) -> None:
    cfg = RunConfig(n=N, workers=4, submit_concurrency=8, timeout=60)
    report = await cli.run_report(cfg, server_url, [], 1, True, True, None,
                                  Progress(enabled=False))
    data = report.to_dict()
    for field in ("scenario", "system", "git_sha", "valkey_version", "host", "timestamp_utc",
                  "config", "throughput_ops_per_sec", "latency_ms", "results", "notes"):
        assert field in data, field
    assert data["scenario"] == "scenario1"
    assert data["host"]["cores"] >= 1 and data["host"]["python"]
    assert data["valkey_version"].split()[0] in ("valkey", "redis")
    assert data["config"]["tasks"] == N and data["config"]["workers"] == 4
    by_system = {r["system"]: r for r in data["results"]}
    assert set(by_system) == {"valkey-baseline", "ff"}
    for result in by_system.values():
        assert result["status"] == "ok", result["notes"]
        assert result["verified"] is True
        assert result["completed"] == N
        for rate in ("e2e_rate", "submit_rate", "drain_rate"):
            assert result[rate] and result[rate] > 0, rate
        assert set(result["latency_ms"]) == {"p50", "p95", "p99"}
        assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert data["throughput_ops_per_sec"] == by_system["ff"]["e2e_rate"]
    assert set(data["ratio_to_baseline"]) == {"valkey-baseline", "ff"}
    summary = report.summary()
    assert "ff" in summary and "valkey-baseline" in summary and f"{N}/{N}" in summary


def test_cli_writes_the_report(server_url: str, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.add_bench_parser(sub)
    out = tmp_path / "report.json"
    args = parser.parse_args(["bench", "-n", "50", "-w", "2", "--url", server_url,
                              "--no-baseline", "--no-phased", "--json", str(out),
                              "--no-progress"])
    assert cli.run_bench_command(args) == 0
    data = json.loads(out.read_text())
    (ff,) = data["results"]
    assert ff["system"] == "ff" and ff["verified"] and ff["completed"] == 50
    assert ff["drain_rate"] is None and ff["e2e_rate"] > 0


def test_cli_rejects_unknown_peer(capsys: object) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert cli.run_bench_command(parser.parse_args(["--peers", "nosuch"])) == 2


def test_percentiles_are_nearest_rank() -> None:
    samples = [float(x) for x in range(1, 101)]  # 1..100
    assert percentiles(samples) == {"p50": 51.0, "p95": 95.0, "p99": 99.0}
    assert percentiles([]) == {}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}


def test_medians_over_runs() -> None:
    runs = [[SystemResult("ff", n=10, e2e_rate=r, verified=True, completed=10,
                          latency_ms={"p50": r / 10, "p95": r / 5, "p99": r / 2})]
            for r in (100.0, 300.0, 200.0)]
    (merged,) = cli.median_results(runs)
    assert merged.e2e_rate == 200.0 and merged.latency_ms["p50"] == 20.0
    assert merged.verified and merged.status == "ok"
    report = Report("scenario1", {"n": 10}, [merged])
    assert report.to_dict()["throughput_ops_per_sec"] == 200.0


def test_worker_split() -> None:
    assert RunConfig(workers=16, procs=0).worker_split() == [16]
    assert RunConfig(workers=16, procs=3).worker_split() == [6, 5, 5]
    assert RunConfig(workers=2, procs=4).worker_split() == [1, 1]
    two_by_eight = RunConfig(workers=2, procs=2, worker_concurrency=8)
    assert two_by_eight.slots == 16 and two_by_eight.worker_split(16) == [8, 8]
