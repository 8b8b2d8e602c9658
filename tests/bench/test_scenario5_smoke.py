"""Smoke tests of scenario 5 (capability-routed claim) and of scenario 1 with admission."""

from __future__ import annotations

from bench import cli, scenario5
from bench.harness import Progress, RunConfig


def test_plans_follow_the_reference_modes() -> None:
    partial = scenario5.Plan("partial", 100, 1000)
    assert sum({"cap0", "cap1"} <= w for w in partial.workers) == 10
    assert all(not w & {"cap0", "cap1"} and len(w) == 3 for w in partial.workers[10:])
    assert 400 < sum(t in ("cap0", "cap1") for t in partial.tasks) < 600
    scarce = scenario5.Plan("scarce", 100, 1000)
    assert scarce.workers.count(frozenset({"cap0"})) == 99
    assert 50 < sum(t != "cap0" for t in scarce.tasks) < 150
    assert scenario5.Plan("happy", 3, 5).tasks == scenario5.Plan("happy", 3, 5).tasks


async def test_happy_and_scarce_small(server_url: str) -> None:
    for mode in ("happy", "scarce"):
        plan = scenario5.Plan(mode, 4, 20)
        base = await scenario5.run_baseline(server_url, plan, "e2e", 30)
        ff = await scenario5.run_ff(server_url, plan, "drain", 30)
        for row in (base, ff):
            assert row["correct_routing_rate"] == 1.0 and row["wrong_claims"] == 0, row
            assert not row["timed_out"] and row["tasks_per_s"] > 0


async def test_scenario1_with_admission_reports_the_ratio(server_url: str) -> None:
    """`ff bench --admission`: ff+admission verified beside ff, the ratios in the notes."""
    cfg = RunConfig(n=100, workers=4, submit_concurrency=8, timeout=60)
    report = await cli.run_report(cfg, server_url, [], 2, False, True, None,
                                  Progress(enabled=False), admission=True)
    by_system = {r.system: r for r in report.results}
    assert set(by_system) == {"ff", "ff+admission"}
    assert all(r.status == "ok" and r.verified for r in by_system.values())
    assert by_system["ff+admission"].config["policy"]["quota_policy_id"]
    assert sum(n.startswith("admission overhead: ff+admission / ff") for n in report.notes) == 2
