"""Arbitrary bytes in every string field of every route's body, over a real socket.

A seeded generator (no extra dependency) puts random byte strings, raw, between the quotes of
one string field at a time: invalid UTF-8, quotes, backslashes, control bytes, brackets, valid
non-ASCII text. Whatever arrives, the answer is 2xx or 4xx with a JSON body, and a 4xx
changes nothing in Valkey (its write counter does not move).
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import quote

import msgspec
import pytest

from ff.client import ApiClient
from tests.api.conftest import Api, writes

pytestmark = pytest.mark.compat  # "writes nothing" depends on the library, on Redis too

CASES_PER_FIELD = 40
MARK = "@@fuzz@@"
JSON = {"Content-Type": "application/json"}
# Bytes that break things: quote, backslash, NUL and controls, brackets, UTF-8 lead and
# continuation bytes, a surrogate lead (0xED), bytes never valid in UTF-8 (0xC0, 0xFF).
NASTY = b'"\\\x00\x01\x1f\x7f[]{}:,\x80\xbf\xc0\xc3\xe2\xed\xf0\xf4\xf5\xff'


def fuzz_bytes(rng: random.Random) -> bytes:
    size = rng.choice([0, 1, 2, 3, 8, 40])
    style = rng.randrange(3)
    if style == 0:
        return rng.randbytes(size)
    if style == 1:
        return bytes(rng.choice(NASTY) for _ in range(size))
    text = "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0xA0, 0xD7FF),
                                   rng.randrange(0xE000, 0x10FFFF)])) for _ in range(size))
    return text.encode("utf-8", "surrogatepass")


def with_field(base: dict[str, Any], path: tuple[Any, ...]) -> bytes:
    """`base` as JSON with the string at `path` (keys and list indexes) replaced by MARK;
    a path ending in `KEY` marks the first key of the object there instead."""
    body = msgspec.json.decode(msgspec.json.encode(base))
    target = body
    for step in path[:-1]:
        target = target[step]
    last = path[-1]
    if last is KEY:
        [(key, value)] = target.items()
        del target[key]
        target[MARK] = value
    else:
        target[last] = MARK
    return msgspec.json.encode(body)


KEY = object()

CREATE = {
    "execution_kind": "k", "namespace": "n", "lane_id": "default", "idempotency_key": "i",
    "creator_identity": "c", "input_payload": "p", "payload_encoding": "e",
    "tags": {"t": "v"},
    "policy": {
        "retry_policy": {"retryable_categories": ["r"]},
        "suspension_policy": {"timeout_behavior": "fail"},
        "routing_requirements": {"required_capabilities": ["cap"], "preferred_locality": "l",
                                 "isolation_level": "s"},
        "stream_policy": {"durability_mode": "buffered"},
    },
}
CREATE_FIELDS = [
    ("execution_kind",), ("namespace",), ("lane_id",), ("idempotency_key",),
    ("creator_identity",), ("input_payload",), ("payload_encoding",), ("execution_id",),
    ("tags", KEY), ("tags", "t"),
    ("policy", "retry_policy", "retryable_categories", 0),
    ("policy", "suspension_policy", "timeout_behavior"),
    ("policy", "routing_requirements", "required_capabilities", 0),
    ("policy", "routing_requirements", "preferred_locality"),
    ("policy", "routing_requirements", "isolation_level"),
    ("policy", "stream_policy", "durability_mode"),
]
CANCEL = {"reason": "r", "source": "operator_override", "lease_id": "l", "lease_epoch": "1",
          "attempt_id": "a", "execution_id": "e"}
CLAIM = {"lane_id": "default", "worker_instance_id": "i", "grant_ttl_ms": 1000,
         "capabilities": ["c"]}
RECLAIM = {"worker_id": "w", "worker_instance_id": "i", "lane_id": "default",
           "grant_ttl_ms": 1000, "capability_hash": "h", "route_snapshot_json": "{}",
           "admission_summary": "s", "worker_capabilities": ["c"]}


def cases(execution_path: str) -> list[tuple[str, str, dict[str, Any], tuple[Any, ...]]]:
    """(method, target, base body, field path) for every string field of every body route."""
    # The base create body has no `execution_id` (the server mints one); that case adds it.
    create = [("POST", "/v1/executions", {**CREATE, "execution_id": "x"} if f == ("execution_id",)
               else CREATE, f) for f in CREATE_FIELDS]
    cancel = [("POST", f"{execution_path}/cancel", CANCEL, (f,)) for f in CANCEL]
    claim = [("POST", "/v1/workers/w/claim", CLAIM, f)
             for f in [("lane_id",), ("worker_instance_id",), ("capabilities", 0)]]
    reclaim = [("POST", f"{execution_path}/reclaim", RECLAIM, f)
               for f in [("worker_id",), ("worker_instance_id",), ("lane_id",),
                         ("capability_hash",), ("route_snapshot_json",),
                         ("admission_summary",), ("worker_capabilities", 0)]]
    return create + cancel + claim + reclaim


async def test_arbitrary_bytes_in_string_fields_get_2xx_or_4xx_json(api: Api) -> None:
    async with ApiClient(api.url) as client:
        eid = (await client.create_execution({"execution_kind": "target"})).execution_id
    raw = await api.raw()
    rng = random.Random(1818)
    seen: dict[int, int] = {}
    for method, target, base, field in cases(f"/v1/executions/{quote(eid, safe='')}"):
        template = with_field(base, field)
        for _ in range(CASES_PER_FIELD):
            body = template.replace(MARK.encode(), fuzz_bytes(rng))
            before = await writes(api)
            reply = await raw.request(method, target, JSON, body)
            where = (target, field, body)
            assert 200 <= reply.status < 500, (*where, reply.status, reply.body)
            seen[reply.status] = seen.get(reply.status, 0) + 1
            if reply.status == 204:
                continue
            assert reply.headers["content-type"] == "application/json", where
            answer = reply.json()
            if reply.status >= 400:
                assert isinstance(answer["error"], str), where
                assert await writes(api) == before, (*where, answer)
    await raw.aclose()
    assert seen.keys() >= {200, 201, 204, 400}, seen
