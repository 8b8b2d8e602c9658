"""examples/pipeline runs as documented: its worker handles the flow its submitter builds."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.api.conftest import running_api
from tests.worker.conftest import running

pytestmark = pytest.mark.slow

PIPELINE = Path(__file__).resolve().parents[2] / "examples" / "pipeline"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"pipeline_{name}", PIPELINE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_pipeline_example(server_url: str, capsys) -> None:
    worker = load("worker").worker
    worker.configure(valkey_url=server_url)
    async with running_api(server_url) as api, running(worker):
        await load("submit").main(api.url)
    out = capsys.readouterr().out
    assert "slow_summary  cancelled" in out
    assert "report        completed" in out
    assert 'report: {"report":"lines: 3"}' in out or 'report: {"report":"words: 9"}' in out
