"""The quick-start example's handlers run as documented (its submitter needs `ff serve`
and is only compiled here)."""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

from ff.server import Server
from ff.worker import Worker
from tests.worker.conftest import running, submit, wait_for_state

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"


def load_example_worker() -> Worker:
    spec = importlib.util.spec_from_file_location("quickstart_worker", QUICKSTART / "worker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.worker


async def test_quickstart_handlers(server: Server, server_url: str) -> None:
    worker = load_example_worker()
    worker.configure(valkey_url=server_url)
    greet = await submit(server, "greet", input_payload='{"name": "Ada"}',
                         payload_encoding="json")
    count = await submit(server, "word_count", input_payload='{"text": "a b A c"}',
                         payload_encoding="json")
    async with running(worker):
        await wait_for_state(server, greet, "completed")
        await wait_for_state(server, count, "completed")
    assert await server.get_execution_result(greet) == b'{"greeting":"Hello, Ada!"}'
    assert await server.get_execution_result(count) == b'{"words":4,"distinct":3}'


def test_quickstart_submitter_compiles() -> None:
    py_compile.compile(str(QUICKSTART / "submit.py"), doraise=True)
