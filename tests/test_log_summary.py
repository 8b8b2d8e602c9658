"""LogSummary on trio's MockClock (autojump): the first event per key, then one line per
interval carrying the count of the events it held back."""

from __future__ import annotations

import logging

import pytest
import trio

from ff.log_summary import LogSummary

LOGGER = "ff.test.summary"


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


async def test_a_steady_failure_writes_one_line_per_interval(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    summary = LogSummary(logging.getLogger(LOGGER), interval=10.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for n in range(2560):  # 128 events a second (exact in binary) for 20 s
            summary.log(logging.WARNING, "down", "backend down n=%d", n)
            await trio.sleep(1 / 128)
    assert messages(caplog) == [
        "backend down n=0",
        "backend down n=1280 (1279 more like this suppressed in the last 10.0 s)",
    ]
    last = caplog.records[-1]
    assert (last.suppressed, last.suppressed_seconds) == (1279, 10.0)  # type: ignore[attr-defined]


async def test_keys_are_independent_and_a_quiet_key_starts_fresh(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    summary = LogSummary(logging.getLogger(LOGGER), interval=5.0)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        summary.log(logging.WARNING, "a", "a1")
        summary.log(logging.WARNING, "b", "b1")
        summary.log(logging.WARNING, "a", "a2")
        await trio.sleep(60)
        summary.log(logging.WARNING, "b", "b2")  # nothing held back: no count
        summary.log(logging.WARNING, "a", "a3")
        summary.log(logging.WARNING, "a", "a4")
    assert messages(caplog) == [
        "a1", "b1", "b2", "a3 (1 more like this suppressed in the last 60.0 s)"]


async def test_a_disabled_level_is_not_counted(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    summary = LogSummary(logging.getLogger(LOGGER), interval=5.0)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for _ in range(3):
            summary.log(logging.WARNING, "k", "quiet")
        summary.log(logging.ERROR, "k", "loud")
    assert messages(caplog) == ["loud"]


async def test_the_traceback_goes_with_the_written_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    summary = LogSummary(logging.getLogger(LOGGER), interval=1.0)
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for n in range(3):
            try:
                raise RuntimeError(f"boom {n}")
            except RuntimeError:
                summary.log(logging.ERROR, RuntimeError, "failed", exc_info=True)
            await trio.sleep(0.6)
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [str(r.exc_info[1]) for r in records if r.exc_info] == ["boom 0", "boom 2"]


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LogSummary(logging.getLogger(LOGGER), interval=0)
