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


APPROVAL = Path(__file__).resolve().parents[2] / "examples" / "approval"


async def test_approval_handler_suspends_and_resumes(server: Server, server_url: str) -> None:
    spec = importlib.util.spec_from_file_location("approval_worker", APPROVAL / "worker.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    worker = module.worker
    worker.configure(valkey_url=server_url)
    from ff.core.records import DeliverSignalArgs

    eid = await submit(server, "publish_post", input_payload='{"topic": "x"}',
                       payload_encoding="json")
    async with running(worker):
        await wait_for_state(server, eid, "suspended")
        [waitpoint] = await server.list_pending_waitpoints(eid)
        token = await server.get_waitpoint_token(eid, waitpoint.waitpoint_id)
        await server.deliver_signal(eid, DeliverSignalArgs(
            waitpoint_id=waitpoint.waitpoint_id, signal_name="reject", waitpoint_token=token,
            payload='{"reason": "no"}', source_identity="rev"))
        await wait_for_state(server, eid, "completed")
    result = await server.get_execution_result(eid)
    assert result == b'{"published":false,"draft":"ff now suspends on waitpoints: x!",' \
                     b'"reviewer":"rev","reason":"no"}'


def test_approval_submitter_compiles() -> None:
    py_compile.compile(str(APPROVAL / "submit.py"), doraise=True)
