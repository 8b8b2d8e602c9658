"""Workers taking claim grants from a server over HTTP (`server_url=`).

The server's own claim route (ff/http/routes.py) is being wired separately, so this
serves the same contract with ff.http around `Server.claim_for_worker`:
`POST /v1/workers/{worker_id}/claim` -> 200 ClaimGrant JSON, or 204 when there is none.
"""

from __future__ import annotations

from functools import partial

import pytest
import trio

from ff.client import HttpStatusError
from ff.http import (
    HttpApp,
    Request,
    Response,
    Router,
    decode_json,
    empty_response,
    json_response,
    serve_http,
)
from ff.http.wire import ClaimRequest
from ff.server import Server
from ff.worker import ClaimedTask, Worker
from tests.worker.conftest import make_worker, running, submit, wait_for_state

TOKEN = "s3cret-token"


async def claim_route(server: Server, nursery: trio.Nursery,
                      calls: list[tuple[str, ClaimRequest]]) -> str:
    async def claim(request: Request) -> Response:
        body = decode_json(request, ClaimRequest)
        worker_id = request.path_params["worker_id"]
        calls.append((worker_id, body))
        grant = await server.claim_for_worker(
            lane_id=body.lane_id, worker_id=worker_id,
            worker_instance_id=body.worker_instance_id, capabilities=body.capabilities,
            grant_ttl_ms=body.grant_ttl_ms)
        return empty_response(204) if grant is None else json_response(200, grant)

    router = Router()
    router.add("POST", "/v1/workers/{worker_id}/claim", claim)
    app = HttpApp(router, api_token=TOKEN)
    port = await nursery.start(partial(serve_http, app, "127.0.0.1", 0, shutdown_grace=0.5))
    return f"http://127.0.0.1:{port}"


async def test_grants_come_from_the_server(server: Server, server_url: str,
                                           nursery: trio.Nursery) -> None:
    calls: list[tuple[str, ClaimRequest]] = []
    base = await claim_route(server, nursery, calls)
    worker = make_worker(server_url, server_url=base, api_token=TOKEN, worker_id="via/http",
                         capabilities=["gpu"], lanes=["default"])

    @worker.handler("job")
    async def job(task: ClaimedTask, payload: object) -> str:
        return task.execution_id

    eids = [await submit(server, "job") for _ in range(5)]
    async with running(worker):
        for eid in eids:
            await wait_for_state(server, eid, "completed")
    assert {await server.get_execution_result(eid) for eid in eids} == {e.encode() for e in eids}
    worker_id, body = calls[0]
    assert (worker_id, body.lane_id, body.capabilities) == ("via/http", "default", ["gpu"])
    assert body.worker_instance_id == worker.config.worker_instance_id


async def test_a_refused_claim_surfaces_and_claims_nothing(server: Server, server_url: str,
                                                           nursery: trio.Nursery) -> None:
    base = await claim_route(server, nursery, [])
    eid = await submit(server, "job")
    async with Worker.connect(server_url, server_url=base, api_token="wrong",
                              worker_id="w") as worker:
        with pytest.raises(HttpStatusError) as info:
            await worker.claim_next()
        assert info.value.status == 401 and worker.in_flight == 0
    assert await server.get_execution_state(eid) == "waiting"
