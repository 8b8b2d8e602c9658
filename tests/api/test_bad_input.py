"""Hostile bodies over a real socket (issue 18): invalid UTF-8 inside JSON strings, deep
nesting and out-of-range millisecond values are 400 JSON errors that write nothing, and a
Valkey outage writes a bounded number of log lines, not one per request."""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from ff.core.ids import ExecutionId
from ff.core.millis import MAX_MILLIS
from ff.embedded import EmbeddedServer
from ff.http._codec import MAX_JSON_DEPTH
from tests.api.conftest import Api, running_api, writes
from tests.http.httptoy import RawClient

JSON = {"Content-Type": "application/json"}


def execution_path(suffix: str) -> str:
    return f"/v1/executions/{quote(ExecutionId.mint(0), safe='')}{suffix}"


# Every route with a body, each string field given bytes that are not UTF-8.
BAD_UTF8_BODIES = [
    ("POST", "/v1/executions", b'{"execution_kind": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "lane_id": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "namespace": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "idempotency_key": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "execution_id": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "creator_identity": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "input_payload": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "payload_encoding": "%s"}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "tags": {"%s": "v"}}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "tags": {"k": "%s"}}'),
    ("POST", "/v1/executions", b'{"execution_kind": "a", "policy": {"budget_ids": ["%s"]}}'),
    ("POST", execution_path("/cancel"), b'{"reason": "%s"}'),
    ("POST", execution_path("/cancel"), b'{"lease_epoch": "%s"}'),
    ("POST", "/v1/workers/w/claim",
     b'{"lane_id": "%s", "worker_instance_id": "i", "grant_ttl_ms": 1000}'),
    ("POST", "/v1/workers/w/claim",
     b'{"lane_id": "a", "worker_instance_id": "i", "grant_ttl_ms": 1000, "capabilities": ["%s"]}'),
    ("POST", execution_path("/reclaim"),
     b'{"worker_id": "%s", "worker_instance_id": "i", "lane_id": "a", "grant_ttl_ms": 1000}'),
]


@pytest.mark.parametrize("method, target, template", BAD_UTF8_BODIES)
async def test_invalid_utf8_in_a_string_is_400(
    api: Api, raw: RawClient, method: str, target: str, template: bytes
) -> None:
    before = await writes(api)
    for bad in (b"\x80", b"ok\xff", b"\xed\xa0\x80", b"\xc3"):
        reply = await raw.request(method, target, JSON, template % bad)
        assert reply.status == 400, (bad, reply.body)
        error = reply.json()
        assert error["kind"] == "invalid_json"
        assert "invalid UTF-8 at byte" in error["error"]
    assert await writes(api) == before


def nested(depth: int) -> bytes:
    """`depth` levels of arrays and objects, alternating."""
    opened = b"".join(b"[" if n % 2 else b'{"k":' for n in range(depth))
    closed = b"".join(b"]" if n % 2 else b"}" for n in reversed(range(depth)))
    return opened + b"0" + closed


@pytest.mark.parametrize("depth", [1000, 5000])
async def test_deep_nesting_is_400_on_every_body_route(
    api: Api, raw: RawClient, depth: int
) -> None:
    before = await writes(api)
    bodies = [
        ("POST", "/v1/executions", b'{"execution_kind": "a", "ignored": %s}'),
        ("POST", "/v1/executions", b'{"execution_kind": "a", "tags": %s}'),
        ("POST", "/v1/executions", b"%s"),
        ("POST", execution_path("/cancel"), b'{"ignored": %s}'),
        ("PUT", execution_path("/priority"), b'{"new_priority": 1, "x": %s}'),
        ("POST", "/v1/workers/w/claim", b'{"x": %s}'),
        ("POST", execution_path("/reclaim"), b'{"x": %s}'),
    ]
    for method, target, template in bodies:
        reply = await raw.request(method, target, JSON, template % nested(depth))
        assert reply.status == 400, (target, reply.body)
        assert reply.json() == {
            "error": f"invalid JSON: nested deeper than {MAX_JSON_DEPTH} levels",
            "kind": "invalid_json"}
    assert await writes(api) == before


async def test_nesting_limit_is_exact_and_ignores_strings(api: Api, raw: RawClient) -> None:
    # The body is level 1, so a value under one of its keys may nest MAX_JSON_DEPTH - 1 deep.
    at_limit = b'{"execution_kind": "a", "ignored": %s}' % nested(MAX_JSON_DEPTH - 1)
    reply = await raw.request("POST", "/v1/executions", JSON, at_limit)
    assert reply.status == 201, reply.body
    over = b'{"execution_kind": "a", "ignored": %s}' % nested(MAX_JSON_DEPTH)
    assert (await raw.request("POST", "/v1/executions", JSON, over)).status == 400
    brackets_in_strings = b'{"execution_kind": "a", "input_payload": "%s\\"[{"}' % (b"[{" * 5000)
    reply = await raw.request("POST", "/v1/executions", JSON, brackets_in_strings)
    assert reply.status == 201, reply.body


MILLIS_FIELDS = [
    b'{"execution_kind": "a", "delay_until": %d}',
    b'{"execution_kind": "a", "execution_deadline_at": %d}',
    b'{"execution_kind": "a", "now": %d}',
    b'{"execution_kind": "a", "policy": {"delay_until": %d}}',
    b'{"execution_kind": "a", "policy": {"dedup_window_ms": %d}}',
    b'{"execution_kind": "a", "policy": {"timeout_policy": {"attempt_timeout_ms": %d}}}',
    b'{"execution_kind": "a", "policy": {"timeout_policy": {"execution_deadline_ms": %d}}}',
    b'{"execution_kind": "a", "policy": {"suspension_policy": {"default_timeout_ms": %d}}}',
    b'{"execution_kind": "a", "policy": {"stream_policy": {"retention_ttl_ms": %d}}}',
    b'{"execution_kind": "a", "policy": {"retry_policy": {"backoff": '
    b'{"type": "fixed", "delay_ms": %d}}}}',
    b'{"execution_kind": "a", "policy": {"retry_policy": {"backoff": '
    b'{"type": "exponential", "initial_delay_ms": %d}}}}',
    b'{"execution_kind": "a", "policy": {"retry_policy": {"backoff": '
    b'{"type": "exponential", "max_delay_ms": %d}}}}',
]
OUT_OF_RANGE = [2**64, -(2**63), MAX_MILLIS + 1, -1, 2**53]


@pytest.mark.parametrize("template", MILLIS_FIELDS)
async def test_out_of_range_millis_are_400_on_create(
    api: Api, raw: RawClient, template: bytes
) -> None:
    before = await writes(api)
    for value in OUT_OF_RANGE:
        reply = await raw.request("POST", "/v1/executions", JSON, template % value)
        assert reply.status == 400, (value, reply.body)
        error = reply.json()["error"]
        assert str(MAX_MILLIS) in error or ">= 0" in error, error
    assert await writes(api) == before
    for value in (0, MAX_MILLIS):
        reply = await raw.request("POST", "/v1/executions", JSON, template % value)
        assert reply.status == 201, (value, reply.body)


async def test_out_of_range_millis_are_400_on_other_routes(api: Api, raw: RawClient) -> None:
    before = await writes(api)
    for value in OUT_OF_RANGE:
        for method, target, body in (
            ("POST", execution_path("/cancel"), b'{"now": %d}' % value),
            ("POST", "/v1/workers/w/claim",
             b'{"lane_id": "a", "worker_instance_id": "i", "grant_ttl_ms": %d}' % value),
            ("POST", execution_path("/reclaim"), b'{"worker_id": "w", "worker_instance_id": "i",'
             b' "lane_id": "a", "grant_ttl_ms": %d}' % value),
        ):
            reply = await raw.request(method, target, JSON, body)
            assert (reply.status, reply.json()["kind"]) == (400, "invalid_body"), (target, value)
    assert await writes(api) == before


async def test_valkey_outage_writes_a_bounded_log(
    fault_server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_api(fault_server.url) as api:
        raw = await api.raw()
        assert (await raw.request("GET", "/healthz")).status == 200
        fault_server.kill()
        with caplog.at_level(logging.INFO, logger="ff"):
            statuses = set()
            for n in range(300):
                method, target, body = (
                    ("POST", "/v1/executions", b'{"execution_kind": "k%d"}' % n) if n % 3 else
                    ("GET", "/healthz", b""))
                statuses.add((await raw.request(method, target, JSON, body)).status)
        assert statuses == {503}
        lines = [r for r in caplog.records if r.name.startswith("ff")]
        # One line per failing route and kind within the interval, however many requests.
        assert 1 <= len(lines) <= 4, [r.getMessage() for r in lines]
        await raw.aclose()
        await fault_server.start()
