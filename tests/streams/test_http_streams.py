"""The stream routes over a real socket: read, long-poll tail, SSE, summary, bad input, the
stream-ops gate (429 under a burst, 503 once shutdown begins), and the worker SDK's
append_frame / update_summary feeding them."""

from __future__ import annotations

import sys

import msgspec
import pytest
import trio

from ff.client import ApiClient, HttpStatusError
from ff.core.errors import FFError, ValidationError
from ff.core.records import StreamFrame
from ff.worker import Worker
from tests.api.conftest import Api, api, client, running_api, writes
from tests.engine.conftest import claim, submit

__all__ = ["api", "client"]


async def claimed(api: Api, server_url: str, worker: Worker):  # type: ignore[no-untyped-def]
    eid = await submit(api.server)
    task = await worker.claim_next()
    assert task is not None and task.execution_id == eid
    return eid, task


async def test_worker_frames_are_read_and_tailed_over_http(api: Api, client: ApiClient,
                                                           server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="w", lease_ttl_ms=5_000) as worker:
        eid, task = await claimed(api, server_url, worker)
        for i in range(5):
            await task.append_frame(f"line {i}")
        await task.append_frame({"tokens": 3}, frame_type="event")
        await task.update_summary({"progress": {"done": 1}})
        await task.update_summary('{"progress": {"of": 2}}')
        await task.flush()
        page = await client.read_stream(eid, 0, limit=3)
        assert [f.fields["payload"] for f in page.frames] == ["line 0", "line 1", "line 2"]
        summary = await client.get_summary(eid, 0)
        assert summary.document == {"progress": {"done": 1, "of": 2}}
        assert summary.version == 2
        await task.complete("done")
    frames = [frame async for frame in client.tail(eid, 0, block_ms=1000, limit=4)]
    assert [f.fields["frame_type"] for f in frames] == (
        ["log"] * 5 + ["event", "summary", "summary", "stream_closed"])
    assert frames[5].fields["encoding"] == "json"
    closed = await client.read_stream(eid, 0)
    assert closed.closed_reason == "attempt_success"


async def test_a_blocked_tail_wakes_at_once_and_the_marker_ends_it(
        api: Api, client: ApiClient, server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="w", lease_ttl_ms=5_000) as worker:
        eid, task = await claimed(api, server_url, worker)
        received: list[tuple[StreamFrame, float]] = []

        async def follow() -> None:
            async for frame in client.tail(eid, 0, block_ms=20_000):
                received.append((frame, trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow)
            await trio.sleep(0.2)  # the tail is blocked in XREAD now
            sent = trio.current_time()
            await task.append_frame("ping")
            with trio.fail_after(5):
                while not received:
                    await trio.sleep(0.001)
            assert received[0][1] - sent < 1.0  # woken by the XADD, not by the 20 s block
            await task.complete()
            with trio.fail_after(5):
                while len(received) < 2:
                    await trio.sleep(0.001)
        assert [f.fields["frame_type"] for f, _ in received] == ["log", "stream_closed"]


async def read_sse(api: Api, path: str, headers: dict[str, str] | None = None) -> bytes:
    """The whole SSE response body (the server closes it at the end)."""
    stream = await trio.open_tcp_stream("127.0.0.1", api.port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    await stream.send_all(f"GET {path} HTTP/1.1\r\nhost: x\r\naccept: text/event-stream\r\n"
                          f"{extra}\r\n".encode())
    data = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            data += chunk
    await stream.aclose()
    return data


def sse_events(raw: bytes) -> list[tuple[str, bytes]]:
    body = raw.split(b"\r\n\r\n", 1)[1]
    events = []
    for block in body.split(b"\n\n"):
        lines = [ln for ln in block.split(b"\r\n")[-1].split(b"\n") if ln and b":" in ln]
        fields = dict(ln.split(b": ", 1) for ln in lines if not ln.startswith(b":"))
        if b"event" in fields:
            events.append((fields[b"event"].decode(), fields[b"data"]))
    return events


async def test_sse_follows_until_the_stream_closes(api: Api, server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="w", lease_ttl_ms=5_000) as worker:
        eid, task = await claimed(api, server_url, worker)
        path = f"/v1/executions/{eid}/attempts/0/stream/tail"
        async with trio.open_nursery() as nursery:
            result: list[bytes] = []

            async def collect() -> None:
                result.append(await read_sse(api, path))

            nursery.start_soon(collect)
            await trio.sleep(0.2)
            await task.append_frame("one")
            await task.append_frame("two")
            await task.complete()
        raw = result[0]
    assert raw.startswith(b"HTTP/1.1 200") and b"text/event-stream" in raw
    events = sse_events(raw)
    assert [e for e, _ in events] == ["frame", "frame", "frame", "closed"]
    payloads = [msgspec.json.decode(d)["fields"]["payload"] for e, d in events[:3]]
    assert payloads == ["one", "two", "attempt_success"]
    assert msgspec.json.decode(events[3][1])["closed_reason"] == "attempt_success"
    first_id = msgspec.json.decode(events[0][1])["id"]
    again = sse_events(await read_sse(api, path, {"last-event-id": first_id}))
    assert [e for e, _ in again] == ["frame", "frame", "closed"]
    assert api.server.stream_ops.in_use == 0


@pytest.mark.parametrize(("suffix", "status", "kind"), [
    ("/0/stream?limit=0", 400, "invalid_query"),
    ("/0/stream?limit=1001", 400, "invalid_query"),
    ("/0/stream?from=-", 400, None),
    ("/0/stream?to=", 400, None),
    ("/0/stream?from=12-x", 400, None),
    ("/0/stream/tail?after=start", 400, None),
    ("/0/stream/tail?block_ms=30001", 400, "invalid_query"),
    ("/0/stream/tail?limit=0", 400, "invalid_query"),
    ("/x/stream", 400, "invalid_path"),
    ("/7/stream", 404, None),
    ("/7/stream/tail", 404, None),
    ("/7/summary", 404, None),
])
async def test_bad_stream_requests_are_4xx_json(api: Api, client: ApiClient, suffix: str,
                                                status: int, kind: str | None) -> None:
    eid = await submit(api.server)
    before = await writes(api)
    response = await client.request("GET", f"/v1/executions/{eid}/attempts{suffix}")
    assert response.status == status, response.body
    body = response.json()
    assert body["error"] and body.get("kind") == kind
    assert await writes(api) == before


async def test_unknown_execution_is_404(client: ApiClient) -> None:
    for path in ("stream", "stream/tail", "summary"):
        response = await client.request(
            "GET", f"/v1/executions/{{fp:1}}:00000000-0000-4000-8000-000000000000/attempts/0/"
                   f"{path}")
        assert response.status == 404, response.body


async def test_sdk_rejects_bad_frames_before_queueing(api: Api, server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="w", lease_ttl_ms=5_000) as worker:
        eid, task = await claimed(api, server_url, worker)
        with pytest.raises(ValidationError):
            await task.append_frame(b"x" * 65_537)
        with pytest.raises(ValidationError):
            await task.update_summary([1, 2])
        with pytest.raises(ValidationError):
            await task.append_frame("x", mode="loud")
        await task.flush()
        assert (await api.server.read_attempt_stream(eid, 0)).count == 0
        await task.complete()


async def test_stream_ops_429_under_a_burst_and_503_during_shutdown(server_url: str) -> None:
    async with running_api(server_url, config={"max_concurrent_stream_ops": 2}) as api:
        eid = await submit(api.server)
        statuses: list[int] = []
        path = f"/v1/executions/{eid}/attempts/0/stream/tail?block_ms=1000&limit=10"
        assert await claim(api.server) is not None  # attempt 0 exists, never written
        async with ApiClient(api.url) as client:
            async def one() -> None:
                statuses.append((await client.request("GET", path)).status)

            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(one)
            assert sorted(statuses) == [200, 200, 429, 429, 429]
            burst = await client.request("GET", path)
            assert burst.status == 200
            await api.server.shutdown()
            refused = await client.request("GET", f"/v1/executions/{eid}/attempts/0/stream")
            assert refused.status == 503
            assert refused.json()["retryable"] is False


async def test_429_is_retryable(server_url: str) -> None:
    async with running_api(server_url, config={"max_concurrent_stream_ops": 1}) as api:
        eid = await submit(api.server)
        api.server.stream_ops.take()
        async with ApiClient(api.url) as client:
            with pytest.raises(HttpStatusError) as refused:
                await client.read_stream(eid, 0)
        api.server.stream_ops.give_back()
        assert refused.value.status == 429 and refused.value.retryable is True
        assert refused.value.kind == "resource_exhausted"


async def test_append_after_losing_the_lease_stops_the_task(api: Api, server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="w", lease_ttl_ms=5_000) as worker:
        eid, task = await claimed(api, server_url, worker)
        await api.server.revoke_lease(eid)
        await task.append_frame("too late")
        with pytest.raises(Exception) as lost:
            await task.flush()
        assert getattr(lost.value, "code", "") == "lease_revoked"
        assert task.lease_lost is not None
        assert (await api.server.read_attempt_stream(eid, 0)).count == 0
        with pytest.raises(FFError):
            await api.server.tail_attempt_stream(eid, 1)


async def test_ff_logs_prints_and_follows_frames(api: Api, server_url: str) -> None:
    async with Worker.connect(server_url, worker_id="w", lease_ttl_ms=5_000) as worker:
        eid, task = await claimed(api, server_url, worker)
        await task.append_frame("first line")
        await task.flush()
        command = [sys.executable, "-m", "ff.cli", "logs", eid, "--server-url", api.url]
        printed = await trio.run_process(command, capture_stdout=True)
        assert printed.stdout.decode().split()[1:] == ["log", "first", "line"]
        async with trio.open_nursery() as nursery:
            followed: list[bytes] = []

            async def follow() -> None:
                done = await trio.run_process([*command, "--attempt", "0", "--follow"],
                                              capture_stdout=True)
                followed.append(done.stdout)

            nursery.start_soon(follow)
            await task.append_frame("second line")
            await task.complete()
        lines = followed[0].decode().splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == [
            "log first line", "log second line", "stream_closed attempt_success"]
