from tests.worker.conftest import make_worker, running, submit, wait_for_state


async def test_smoke(server, server_url):
    worker = make_worker(server_url)

    @worker.handler("echo")
    async def echo(task, payload):
        return {"got": payload}

    eid = await submit(server, "echo", input_payload='{"a": 1}', payload_encoding="json")
    async with running(worker):
        assert await wait_for_state(server, eid, "completed", "failed") == "completed"
    assert await server.get_execution_result(eid) == b'{"got":{"a":1}}'
