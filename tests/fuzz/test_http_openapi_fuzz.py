"""Every operation of `GET /v1/openapi.json` called with requests generated from its own
schema, and with mutations of them, over a real socket.

A seeded generator (no extra dependency) builds bodies from the operation's request schema
(references resolved; optional fields sometimes left out; strings, numbers and lists drawn
from edge values and the data set's real ids), then mutates them: a required field
dropped, a value of the wrong type, an unknown field, a body that is not JSON or not an
object, deep nesting. Paths are filled with real ids of the data set or junk; queries get
random names and values. Whatever arrives: no answer >= 500, every answer within a bound,
and a rejected request (4xx) leaves Valkey's write counter where it was.
"""

from __future__ import annotations

import random
import time
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
import trio

from ff.client import ApiClient
from ff.core.budget_records import CreateBudgetArgs, CreateQuotaPolicyArgs
from ff.core.flow_records import CreateFlowArgs
from tests.api.conftest import Api, running_api, writes
from tests.http.httptoy import RawClient

pytestmark = pytest.mark.compat

CASES_PER_OPERATION = 90
REQUEST_BOUND_S = 5.0
JSON = {"Content-Type": "application/json"}
JUNK_STRINGS = ("", " ", "x" * 300, "../../etc", "%00", "\u00e9\u4e2d\U0001f600", "-1",
                "null", "{}", "a,b", "0" * 40, "00000000-0000-4000-8000-000000000000")
JUNK_NUMBERS = (0, 1, -1, 2**31, 2**63, -(2**63), 10**30, 0.5, -0.0)
QUERY_NAMES = ("limit", "offset", "partition", "cursor", "lane", "state", "wait", "from",
               "to", "after", "block_ms", "zz")


class Generator:
    """Values for one schema, resolving `$ref` against the document's components."""

    def __init__(self, document: dict[str, Any], ids: list[str], rng: random.Random) -> None:
        self.components = document.get("components", {}).get("schemas", {})
        self.ids = ids
        self.rng = rng

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def string(self) -> str:
        rng = self.rng
        return rng.choice([rng.choice(self.ids), rng.choice(JUNK_STRINGS), "default", "k"])

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        schema, rng = self.resolve(schema), self.rng
        if "enum" in schema:
            return rng.choice([*schema["enum"], "not-in-enum"] if rng.random() < 0.2
                              else schema["enum"])
        if "const" in schema:
            return schema["const"]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.value(rng.choice(schema[key]), depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = rng.choice(kind)
        if kind == "object" or "properties" in schema:
            return self.obj(schema, depth)
        if kind == "array":
            items = schema.get("items", {})
            return [self.value(items, depth + 1) for _ in range(rng.choice([0, 1, 2, 3]))]
        if kind == "string":
            return self.string()
        if kind == "integer":
            bounded = [v for v in (schema.get("minimum"), schema.get("maximum")) if v is not None]
            return rng.choice([*bounded, *(int(n) for n in JUNK_NUMBERS), 5, 1000])
        if kind == "number":
            return rng.choice(JUNK_NUMBERS)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "null":
            return None
        return rng.choice([None, 1, "x", [], {}])

    def obj(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        required = set(schema.get("required", ()))
        out: dict[str, Any] = {}
        if depth > 4:
            return out
        for name, field in schema.get("properties", {}).items():
            if name in required or self.rng.random() < 0.5:
                out[name] = self.value(field, depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and self.rng.random() < 0.5:
            out[self.string() or "k"] = self.value(extra, depth + 1)
        return out

    def mutate(self, body: Any, schema: dict[str, Any]) -> bytes:
        """One mutation of a generated body, as the bytes sent."""
        rng = self.rng
        schema = self.resolve(schema)
        choice = rng.randrange(8)
        if choice == 0 and isinstance(body, dict) and schema.get("required"):
            body = dict(body)
            body.pop(rng.choice(schema["required"]), None)
        elif choice == 1 and isinstance(body, dict) and body:
            body = dict(body)
            body[rng.choice(list(body))] = rng.choice([None, [], {}, "x", 10**40, True, -1])
        elif choice == 2 and isinstance(body, dict):
            body = {**body, "unknown_field": 1}
        elif choice == 3:
            return rng.choice([b"", b"{", b"nul", b"\xff\xfe", b"[]", b"1", b'"s"', b"{}" * 3])
        elif choice == 4:
            depth = rng.choice([20, 200, 2000])
            nested = b"[" * depth + b"1" + b"]" * depth
            return b'{"x": ' + nested + b"}" if rng.random() < 0.5 else nested
        elif choice == 5:
            body = [body]
        elif choice == 6:
            return msgspec.json.encode(body) + b"garbage"
        return msgspec.json.encode(body)


def path_for(pattern: str, gen: Generator, valid: bool) -> str:
    rng = gen.rng
    out = []
    for segment in pattern.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            value = rng.choice(gen.ids) if valid else gen.string()
            if "index" in segment or "attempt" in segment:
                value = rng.choice(["0", "1", "-1", "x", "99999999999999999999"]) if not valid \
                    else "0"
            segment = quote(value, safe="") or "%20"
        out.append(segment)
    return "/".join(out)


def query_for(gen: Generator) -> str:
    rng = gen.rng
    if rng.random() < 0.5:
        return ""
    pairs = []
    for _ in range(rng.choice([1, 2, 3])):
        value = rng.choice([*(str(n) for n in JUNK_NUMBERS), *JUNK_STRINGS, "true", "1"])
        pairs.append(f"{rng.choice(QUERY_NAMES)}={quote(value, safe='')}")
    return "?" + "&".join(pairs)


async def data_set(api: Api) -> list[str]:
    """Real ids a generated path or field may hit: an execution, a flow, a budget, a
    quota policy."""
    async with ApiClient(api.url) as client:
        eid = (await client.create_execution({"execution_kind": "fuzz"})).execution_id
    server = api.server
    flow = await server.create_flow(CreateFlowArgs(flow_kind="fuzz"))
    budget = await server.create_budget(CreateBudgetArgs(dimensions=["t"], hard_limits=[9],
                                                         soft_limits=[0]))
    quota = await server.create_quota_policy(CreateQuotaPolicyArgs(max_concurrent=1))
    assert flow.Created and budget.Created and quota.Created
    return [eid, flow.Created.flow_id, budget.Created.budget_id,
            quota.Created.quota_policy_id, "w1", "default"]


async def settled(api: Api) -> None:
    """Background work an accepted request started (async flow cancel) has finished."""
    nursery = api.server.dispatch_nursery
    with trio.move_on_after(2):
        while nursery is not None and nursery.child_tasks:
            await trio.sleep(0.01)


@pytest.mark.slow
async def test_every_operation_fuzzed_from_its_schema(server_url: str) -> None:
    # No completion listener: it would write after an accepted request, while the next
    # one's write counter is read.
    async with running_api(server_url, config={"completion_listener": False}) as api:
        await fuzz_every_operation(api)


async def fuzz_every_operation(api: Api) -> None:
    ids = await data_set(api)
    raw = await api.raw()
    document = (await raw.request("GET", "/v1/openapi.json")).json()
    gen = Generator(document, ids, random.Random(1717))
    statuses: dict[int, int] = {}
    problems: list[str] = []
    operations = [(path, method.upper(), op) for path, item in document["paths"].items()
                  for method, op in item.items()]
    assert len(operations) > 20
    started = time.monotonic()
    for pattern, method, op in operations:
        schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {})
                  .get("schema"))
        for case in range(CASES_PER_OPERATION):
            valid = case % 3 == 0
            target = path_for(pattern, gen, valid) + ("" if valid else query_for(gen))
            body = b""
            if schema is not None:
                value = gen.value(schema)
                body = msgspec.json.encode(value) if case % 3 != 2 else gen.mutate(value, schema)
            before = await writes(api)
            where = f"{method} {target} {body[:300]!r}"
            try:
                with trio.fail_after(REQUEST_BOUND_S):
                    reply = await raw.request(method, target, JSON if body else {}, body)
            except trio.TooSlowError:
                problems.append(f"{where}: no answer within {REQUEST_BOUND_S} s")
                raw = await reconnect(raw, api)
                continue
            statuses[reply.status] = statuses.get(reply.status, 0) + 1
            if reply.status >= 500:
                problems.append(f"{where}: {reply.status} {reply.body[:300]!r}")
            elif reply.status >= 400:
                if await writes(api) != before:
                    problems.append(f"{where}: {reply.status} but wrote")
            else:
                await settled(api)
            if reply.headers.get("connection") == "close":
                raw = await reconnect(raw, api)
    await raw.aclose()
    elapsed = time.monotonic() - started
    print(f"{sum(statuses.values())} requests, {len(operations)} operations, "
          f"statuses {dict(sorted(statuses.items()))}, {elapsed:.1f} s")
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} problems)"
    assert any(200 <= s < 300 for s in statuses) and 400 in statuses, statuses


async def reconnect(raw: RawClient, api: Api) -> RawClient:
    await raw.aclose()
    return await api.raw()
