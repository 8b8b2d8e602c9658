"""examples/llm_budget runs as documented: the flow's calls stop at the token budget, are
held rate_limited, and finish after the reset."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from ff.config import ScannerIntervals
from tests.api.conftest import running_api
from tests.worker.conftest import running

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm_budget"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"llm_budget_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_llm_budget_example(server_url: str, capsys) -> None:
    worker = load("worker").worker
    worker.configure(valkey_url=server_url)
    config = {"scanners_enabled": True, "intervals": ScannerIntervals(unblock=0.2)}
    async with running_api(server_url, config=config) as api, running(worker):
        await load("submit").main(api.url)
    out = capsys.readouterr().out
    reached = re.search(r"budget reached: (\d+)/2000 tokens; calls: (.*)", out)
    assert reached is not None, out
    assert int(reached.group(1)) == 2000  # eight calls of 250: never a token more
    assert "8 completed" in reached.group(2)
    after = re.search(r"after the reset: (\d+)/2000 tokens; calls: (.*)", out)
    assert after is not None, out
    # Every call ends; those refused by a hard breach failed, the held ones ran after the
    # reset and spent again.
    done = dict((s, int(n)) for n, s in re.findall(r"(\d+) (\w+)", after.group(2)))
    assert set(done) <= {"completed", "failed"} and sum(done.values()) == 12
    assert int(after.group(1)) == 250 * (done["completed"] - 8)
    pace = re.search(r"started at ([\d.]+) per second", out)
    assert pace is not None and float(pace.group(1)) <= 6.5
