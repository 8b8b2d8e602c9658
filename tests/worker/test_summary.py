"""Quiet workers: at info level a busy worker logs one summary line per interval and no line
per task; the summary's arithmetic runs on trio's mock clock."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.testing

from ff.server import Server
from ff.worker import ClaimedTask
from ff.worker._summary import TaskCounts
from tests.worker.conftest import make_worker, running, submit, wait_for_state


def summaries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The summary lines' fields (a record's `extra=` values are its attributes)."""
    return [vars(r) for r in caplog.records if r.getMessage() == "worker summary"]


async def test_summary_counts_resets_and_stays_silent_when_idle(
        autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ff.worker")
    counts = TaskCounts()
    in_flight = [3]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(counts.log_every, 10.0, lambda: in_flight[0])
        for outcome in ("complete", "complete", "fail", None, "delay", "cancel"):
            counts.ended(outcome)
        await trio.sleep(10.5)  # first line
        in_flight[0] = 0
        await trio.sleep(20.0)  # two intervals with nothing done, nothing in flight
        counts.ended("complete")
        await trio.sleep(10.0)
        nursery.cancel_scope.cancel()
    lines = [(s["done"], s["failed"], s["in_flight"], s["rate"]) for s in summaries(caplog)]
    assert lines == [(6, 2, 3, 0.6), (1, 0, 0, 0.1)]


async def test_a_busy_worker_logs_summaries_not_tasks(
        server: Server, server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ff")
    total = 40
    worker = make_worker(server_url, summary_interval_s=0.2, max_concurrent=8)

    @worker.handler("noop")
    async def noop(task: ClaimedTask, payload: object) -> None:
        if task.execution_id in failing:
            raise RuntimeError("planned")

    eids = [await submit(server, "noop") for _ in range(total)]
    failing = set(eids[:5])
    async with running(worker):
        for eid in eids:
            await wait_for_state(server, eid, "completed", "failed")
        with trio.fail_after(5):  # the interval that saw the last task has been logged
            while sum(s["done"] for s in summaries(caplog)) < total:
                await trio.sleep(0.05)
    per_task = [r for r in caplog.records if r.name.startswith("ff.worker")
                and r.getMessage() not in ("worker summary", "worker connected",
                                           "worker disconnected")
                and not r.getMessage().startswith("task failed")]
    assert per_task == []
    failures = [r for r in caplog.records if r.getMessage().startswith("task failed")]
    assert 1 <= len(failures) <= 5 and all(r.levelno == logging.WARNING for r in failures)
    lines = summaries(caplog)
    assert sum(s["failed"] for s in lines) == 5
    assert all(s["levelno"] == logging.INFO and s["rate"] > 0 for s in lines)


async def test_per_task_lines_are_debug(
        server: Server, server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="ff.worker")
    worker = make_worker(server_url, summary_interval_s=0)

    @worker.handler("noop")
    async def noop(task: ClaimedTask, payload: object) -> None:
        return None

    eid = await submit(server, "noop")
    async with running(worker):
        await wait_for_state(server, eid, "completed")
        with trio.fail_after(5):
            while not any(r.getMessage() == "task finished" for r in caplog.records):
                await trio.sleep(0.02)
    finished = [r for r in caplog.records if r.getMessage() == "task finished"]
    assert [(r.levelno, vars(r)["outcome"]) for r in finished] == [(logging.DEBUG, "completed")]
    assert summaries(caplog) == []


async def test_handler_failures_are_logged_once_per_interval(
        server: Server, server_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ff")
    worker = make_worker(server_url, max_concurrent=8)

    @worker.handler("broken")
    async def broken(task: ClaimedTask, payload: object) -> None:
        raise RuntimeError("always")

    eids = [await submit(server, "broken") for _ in range(30)]
    async with running(worker):
        for eid in eids:
            await wait_for_state(server, eid, "failed")
    failures = [r for r in caplog.records if r.getMessage().startswith("task failed")]
    assert len(failures) == 1
    assert "RuntimeError: always" in failures[0].getMessage()
    assert "handler_error" in failures[0].getMessage()
