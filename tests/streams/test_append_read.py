"""Appending frames under the lease fence, reading them back, the summary document (RFC 7396)
and best_effort retention, against a real server (in process, no HTTP)."""

from __future__ import annotations

import msgspec
import pytest

from ff.core.errors import FFError
from ff.core.keys import ExecKeys
from ff.core.records import LeaseHandle
from ff.script import execution as execution_fns
from ff.script import stream as sf
from ff.server import Server
from tests.engine.conftest import claim, server, submit

__all__ = ["server"]

pytestmark = pytest.mark.compat


def fence_of(lease: LeaseHandle) -> sf.Fence:
    return sf.Fence(lease.lease_id, lease.lease_epoch, lease.attempt_id, lease.attempt_index)


async def running_attempt(server: Server) -> tuple[str, LeaseHandle]:
    eid = await submit(server)
    lease = await claim(server)
    assert lease is not None
    return eid, lease


async def append(server: Server, eid: str, lease: LeaseHandle, payload: bytes | str,
                 **frame: object) -> sf.AppendResult:
    data = payload.encode() if isinstance(payload, str) else payload
    return await sf.append_frame(server.library, eid, fence_of(lease),
                                 sf.AppendFrame(payload=data, **frame))  # type: ignore[arg-type]


async def stream_len(server: Server, eid: str, idx: int = 0) -> int:
    return int(await server.client.execute("XLEN", ExecKeys(eid).stream(idx)))


async def test_frames_read_back_in_order_across_pages(server: Server) -> None:
    eid, lease = await running_attempt(server)
    ids = [(await append(server, eid, lease, f"line {i}")).entry_id for i in range(25)]
    seen: list[str] = []
    start = "start"
    while True:
        page = await server.read_attempt_stream(eid, 0, from_id=start, count_limit=10)
        seen += [frame.fields["payload"] for frame in page.frames]
        if page.count < 10:
            break
        ms, seq = page.frames[-1].id.split("-")
        start = f"{ms}-{int(seq) + 1}"
    assert seen == [f"line {i}" for i in range(25)]
    assert page.closed_at is None
    window = await server.read_attempt_stream(eid, 0, from_id=ids[3], to_id=ids[5])
    assert [f.id for f in window.frames] == ids[3:6]
    assert window.frames[0].fields["mode"] == "durable"


async def test_close_markers_and_closing_frame(server: Server) -> None:
    eid, lease = await running_attempt(server)
    await append(server, eid, lease, "hello", correlation_id="c1")
    await execution_fns.complete_execution(server.library, eid, lease_id=lease.lease_id,
                                           lease_epoch=lease.lease_epoch,
                                           attempt_id=lease.attempt_id)
    page = await server.read_attempt_stream(eid, 0)
    assert page.closed_reason == "attempt_success" and page.closed_at is not None
    assert [f.fields["frame_type"] for f in page.frames] == ["log", "stream_closed"]
    assert page.frames[0].fields["correlation_id"] == "c1"
    assert page.frames[1].fields["payload"] == "attempt_success"


async def test_attempt_without_frames_reads_as_closed_when_it_ended(server: Server) -> None:
    eid, lease = await running_attempt(server)
    assert (await server.read_attempt_stream(eid, 0)).closed_at is None
    await execution_fns.fail_execution(server.library, eid, lease_id=lease.lease_id,
                                       lease_epoch=lease.lease_epoch,
                                       attempt_id=lease.attempt_id, reason="boom",
                                       category="x", source="worker", retryable=False)
    page = await server.read_attempt_stream(eid, 0)
    assert (page.count, page.closed_reason) == (0, "attempt_failure")


async def test_reclaimed_attempt_stream_is_closed_with_reclaimed(server: Server) -> None:
    eid, lease = await running_attempt(server)
    await append(server, eid, lease, "before the crash")
    await server.revoke_lease(eid)
    new_lease = await claim(server, "w2")
    assert new_lease is not None and new_lease.attempt_index == 1
    old = await server.read_attempt_stream(eid, 0)
    assert old.closed_reason == "reclaimed"
    with pytest.raises(FFError) as stale:
        await append(server, eid, lease, "from the old holder")
    assert stale.value.code in ("stale_lease", "lease_revoked")
    await append(server, eid, new_lease, "new attempt")
    fresh = await server.read_attempt_stream(eid, 1)
    assert [f.fields["payload"] for f in fresh.frames] == ["new attempt"]


async def test_bad_appends_write_nothing(server: Server) -> None:
    eid, lease = await running_attempt(server)
    cases = [
        ({"payload": b"x" * 65_537}, "retention_limit_exceeded"),
        ({"payload": b"[1]", "mode": "summary"}, "invalid_input"),
        ({"payload": b"{bad", "mode": "summary"}, "invalid_input"),
        ({"payload": b"x", "mode": "loud"}, "invalid_input"),
        ({"payload": b"x", "frame_type": ""}, "invalid_frame_type"),
        ({"payload": b'{"a":' * 20 + b"1" + b"}" * 20, "mode": "summary"},
         "patch_depth_exceeded"),
    ]
    for frame, code in cases:
        with pytest.raises(FFError) as rejected:
            await sf.append_frame(server.library, eid, fence_of(lease), sf.AppendFrame(**frame))
        assert rejected.value.code == code and rejected.value.status == 400
    stale = sf.Fence(lease.lease_id, str(int(lease.lease_epoch) + 1), lease.attempt_id, 0)
    with pytest.raises(FFError) as fenced:
        await sf.append_frame(server.library, eid, stale, sf.AppendFrame(payload=b"x"))
    assert fenced.value.code == "stale_lease"
    wrong_attempt = sf.Fence(lease.lease_id, lease.lease_epoch, lease.attempt_id, 1)
    with pytest.raises(FFError):
        await sf.append_frame(server.library, eid, wrong_attempt, sf.AppendFrame(payload=b"x"))
    keys = ExecKeys(eid)
    assert await server.client.execute("EXISTS", keys.stream(0), keys.stream_meta(0),
                                       keys.attempt_summary(0), keys.stream(1)) == 0


# RFC 7396 appendix A, for object targets and object patches (the document is an object).
# The target is applied as a first patch, so its nulls are written with the sentinel.
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": "__ff_null__"}, {"a": 1}, {"e": None, "a": 1}),  # a stored null: the sentinel
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({"a": [1, 2]}, {"a": []}, {"a": []}),
    ({"a": {"x": 1}}, {"a": {}}, {"a": {"x": 1}}),
    ({"a": 1}, {"b": "__ff_null__"}, {"a": 1, "b": None}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC_EXAMPLES)
async def test_summary_patches_compose(server: Server, target: dict, patch: dict,
                                       expected: dict) -> None:
    eid, lease = await running_attempt(server)
    assert (await server.read_summary(eid, 0)).document is None
    first = await append(server, eid, lease, msgspec.json.encode(target), mode="summary")
    second = await append(server, eid, lease, msgspec.json.encode(patch), mode="summary")
    assert (first.summary_version, second.summary_version) == (1, 2)
    summary = await server.read_summary(eid, 0)
    assert summary.document == expected
    assert (summary.version, summary.patch_kind) == (2, "json-merge-patch")
    assert summary.first_applied_ms is not None and summary.last_updated_ms is not None


async def test_summary_nested_objects_merge_over_several_patches(server: Server) -> None:
    eid, lease = await running_attempt(server)
    for patch in ({"progress": {"done": 1, "of": 10}, "tokens": [1]},
                  {"progress": {"done": 2}, "tokens": [1, 2], "model": "m"},
                  {"progress": {"of": None}, "model": None}):
        await append(server, eid, lease, msgspec.json.encode(patch), mode="summary")
    summary = await server.read_summary(eid, 0)
    assert summary.document == {"progress": {"done": 2}, "tokens": [1, 2]}
    assert summary.version == 3


async def test_best_effort_retention_stays_bounded_under_a_burst(server: Server) -> None:
    eid, lease = await running_attempt(server)
    fence = fence_of(lease)
    frame = sf.AppendFrame(payload=b"tok", mode="best_effort", ttl_ms=100)
    for _ in range(20):
        answers = await sf.append_frames(server.library, eid, fence, [frame] * 500)
        assert not any(isinstance(a, FFError) for a in answers)
    keys = ExecKeys(eid)
    meta = await server.client.execute("HGETALL", keys.stream_meta(0))
    meta = {k.decode(): v.decode() for k, v in meta.items()}
    assert meta["frame_count"] == "10000" and meta["has_durable_frame"] == "0"
    applied = int(meta["maxlen_applied_last"])
    assert 64 <= applied <= 16_384
    length = await stream_len(server, eid)
    assert length <= applied + 200 and length < 10_000  # `~` trims whole nodes of 100
    ttl = int(await server.client.execute("PTTL", keys.stream(0)))
    assert 0 < ttl <= 200
    await append(server, eid, lease, "durable now")
    assert int(await server.client.execute("PTTL", keys.stream(0))) == -1


async def test_durable_retention_follows_the_policy(server: Server) -> None:
    eid = await submit(server, policy={"stream_policy": {"retention_maxlen": 5}})
    lease = await claim(server)
    assert lease is not None
    for i in range(12):
        await append(server, eid, lease, str(i))
    page = await server.read_attempt_stream(eid, 0)
    assert [f.fields["payload"] for f in page.frames] == ["7", "8", "9", "10", "11"]
    meta = await server.client.execute("HGET", ExecKeys(eid).stream_meta(0), "frame_count")
    assert meta == b"12"
