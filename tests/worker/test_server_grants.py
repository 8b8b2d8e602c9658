"""Workers taking claim grants from the server's claim route over HTTP (`server_url=`):
`POST /v1/workers/{worker_id}/claim` -> 200 ClaimGrant JSON, or 204 when there is none."""

from __future__ import annotations

import re
from functools import partial

import msgspec
import pytest
import trio

from ff.client import HttpClient, HttpStatusError
from ff.http import serve_http
from ff.http.routes import build_app
from ff.server import Server
from ff.worker import ClaimedTask, Worker
from tests.worker.conftest import make_worker, running, submit, wait_for_state

pytestmark = pytest.mark.cluster

TOKEN = "s3cret-token"


async def serve_api(server: Server, nursery: trio.Nursery) -> str:
    app = build_app(server, msgspec.structs.replace(server.config, api_token=TOKEN))
    port = await nursery.start(partial(serve_http, app, "127.0.0.1", 0, shutdown_grace=0.5))
    return f"http://127.0.0.1:{port}"


async def grants_issued(base: str) -> int:
    """The server's own count of claim grants (ff_executions_claimed_total, kind=claim)."""
    async with HttpClient(base) as http:
        text = (await http.request("GET", "/metrics")).body.decode()
    match = re.search(r'^ff_executions_claimed_total\{kind="claim"\} (\S+)$', text, re.M)
    return int(float(match.group(1))) if match else 0


async def test_grants_come_from_the_server(server: Server, server_url: str,
                                           nursery: trio.Nursery) -> None:
    base = await serve_api(server, nursery)
    before = await grants_issued(base)
    worker = make_worker(server_url, server_url=base, api_token=TOKEN, worker_id="via/http",
                         capabilities=["gpu"])

    @worker.handler("job")
    async def job(task: ClaimedTask, payload: object) -> str:
        return task.execution_id

    eids = [await submit(server, "job") for _ in range(5)]
    async with running(worker):
        for eid in eids:
            await wait_for_state(server, eid, "completed")
    assert {await server.get_execution_result(eid) for eid in eids} == {e.encode() for e in eids}
    assert await grants_issued(base) - before == 5


async def test_a_refused_claim_surfaces_and_claims_nothing(server: Server, server_url: str,
                                                           nursery: trio.Nursery) -> None:
    base = await serve_api(server, nursery)
    eid = await submit(server, "job")
    async with Worker.connect(server_url, server_url=base, api_token="wrong",
                              worker_id="w") as worker:
        with pytest.raises(HttpStatusError) as info:
            await worker.claim_next()
        assert info.value.status == 401 and worker.in_flight == 0
    assert await server.get_execution_state(eid) == "waiting"
