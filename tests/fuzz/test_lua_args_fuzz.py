"""Every function of the Lua library called with malformed, missing, oversized and
wrong-typed ARGV against a realistic data set: a rejected call answers the error envelope
`{0, code, ...}` (never a script error) and leaves every key of its hash tag as it was.

The functions and their KEYS/ARGV come from the headers in the assembled library source.
The baseline call of a function is one the engine made while the data set was built
(recorded), or else one built from its header (keys resolved from their descriptions).
Each mutation changes one ARGV position of a baseline (or cuts the list there); KEYS stay
those of the right tag. After a call that changed data (an accepted one), the tag is put
back from its snapshot, so every call meets the same data set.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import pytest
import trio

from ff.core import conditions as cond
from ff.core.budget_records import CreateBudgetArgs, CreateQuotaPolicyArgs, ReportUsageArgs
from ff.core.keys import ExecKeys, FlowKeys, waitpoint_key
from ff.core.records import CancelExecutionArgs, DeliverSignalArgs
from ff.resp.errors import ResponseError
from ff.script import execution as execution_fns
from ff.script import scheduling as scheduling_fns
from ff.script import stream as sf
from ff.script.library import library_source
from ff.server import Server
from tests.engine.conftest import claim, engine_config, fence, submit
from tests.engine.test_waitpoints import suspend
from tests.flows.conftest import Dag
from tests.fuzz.lua_headers import Header, headers

pytestmark = pytest.mark.compat  # the library is the same on Redis 7

CALL_TIMEOUT_S = 5.0
OVERSIZED = "x" * (1 << 20)
# One ARGV value each: empty, wrong types, numbers out of range or not integers, broken
# JSON, bytes that are not UTF-8, NUL, and one MiB.
BAD_VALUES: tuple[str | bytes, ...] = (
    "", "abc", "-1", "1.5", "1e400", "nan", "9" * 40, "{", '{"a":[', "[]",
    b"\xff\xfe\x00", " 7", "0x10", OVERSIZED,
)

# Per key: name, DUMP (to restore), PTTL, and what is compared: a hash's sorted fields
# (its DUMP follows the encoding's iteration order, which a RESTORE may change), else the
# DUMP itself.
SNAPSHOT = """
local keys = redis.call('KEYS', '*' .. ARGV[1] .. '*')
table.sort(keys)
local out = {}
for _, k in ipairs(keys) do
  out[#out + 1] = k
  out[#out + 1] = redis.call('DUMP', k)
  out[#out + 1] = redis.call('PTTL', k)
  if redis.call('TYPE', k).ok == 'hash' then
    local flat = redis.call('HGETALL', k)
    local pairs_ = {}
    for i = 1, #flat, 2 do pairs_[#pairs_ + 1] = flat[i] .. '\0' .. flat[i + 1] end
    table.sort(pairs_)
    out[#out + 1] = table.concat(pairs_, '\1')
  else
    out[#out + 1] = out[#out - 1]
  end
end
return out
"""
RESTORE = """
for _, k in ipairs(redis.call('KEYS', '*' .. ARGV[1] .. '*')) do redis.call('DEL', k) end
for i = 2, #ARGV, 3 do
  local ttl = tonumber(ARGV[i + 2])
  if ttl < 0 then ttl = 0 elseif ttl == 0 then ttl = 1 end
  redis.call('RESTORE', ARGV[i], ttl, ARGV[i + 1], 'REPLACE')
end
return 1
"""

class Snapshot:
    """Every key of a tag with its DUMP, PTTL and compared value, and when (monotonic ms)
    it was taken."""

    def __init__(self, entries: list[tuple[bytes, bytes, int]], dumps: dict[bytes, bytes],
                 taken_ms: float) -> None:
        self.entries = entries  # (key, compared value, PTTL)
        self.dumps = dumps
        self.taken_ms = taken_ms


async def snapshot(server: Server, tag: str) -> Snapshot:
    flat = await server.client.execute("EVAL", SNAPSHOT, 0, tag)
    rows = range(0, len(flat), 4)
    return Snapshot([(flat[i], flat[i + 3], int(flat[i + 2])) for i in rows],
                    {flat[i]: flat[i + 1] for i in rows}, time.monotonic() * 1000)


def same(before: Snapshot, after: Snapshot) -> bool:
    """Same keys and values; a TTL may have ticked down, but not been set, cleared or
    pushed out, and a key whose TTL ran out in between may be gone (the data set holds
    short-lived keys, such as a claim grant)."""
    present = {key for key, _, _ in after.entries}
    elapsed = after.taken_ms - before.taken_ms + 50
    kept = [(k, v, t) for k, v, t in before.entries
            if k in present or not 0 <= t <= elapsed]
    if [(k, v) for k, v, _ in kept] != [(k, v) for k, v, _ in after.entries]:
        return False
    return all((a < 0) == (b < 0) and b <= a + 5
               for (_, _, a), (_, _, b) in zip(kept, after.entries, strict=True))


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """The keys that differ (value or TTL), for the failure message."""
    old = {k: (v, t) for k, v, t in before.entries}
    new = {k: (v, t) for k, v, t in after.entries}
    return sorted(f"{k.decode(errors='replace')} ttl {old.get(k, (0, None))[1]} -> "
                  f"{new.get(k, (0, None))[1]}"
                  for k in old.keys() | new.keys() if old.get(k, (0, 0))[0] != new.get(k, (0, 0))[0]
                  or (k in old) != (k in new))


async def restore(server: Server, tag: str, state: Snapshot) -> None:
    args: list[Any] = [tag]
    for key, _, ttl in state.entries:
        args += [key, state.dumps[key], ttl]
    await server.client.execute("EVAL", RESTORE, 0, *args)


class Recorder:
    """Keeps the first FCALL the engine makes of each function (KEYS and ARGV as sent)."""

    def __init__(self, server: Server) -> None:
        self.calls: dict[str, tuple[list[str], list[Any]]] = {}
        library = server.library
        call, call_many = library.call, library.call_many

        async def recording_call(name: str, keys: Sequence[str], args: Sequence[object]):
            self.calls.setdefault(name, (list(keys), list(args)))
            return await call(name, keys, args)

        async def recording_many(name: str, calls: Sequence[tuple[Sequence[str], Sequence[object]]]
                                 ) -> Any:
            if calls:
                self.calls.setdefault(name, (list(calls[0][0]), list(calls[0][1])))
            return await call_many(name, calls)

        library.call = recording_call  # type: ignore[method-assign]
        library.call_many = recording_many  # type: ignore[method-assign]


class DataSet:
    """Executions in several states, a flow with an edge, a suspended execution with its
    waitpoint, a stream, a budget, a quota and a worker: the ids the resolver needs."""

    solo: dict[str, str]
    flow_id: str
    flow_tag: str
    member: str
    waitpoint_id: str
    budget: tuple[str, str]
    quota: tuple[str, str]

    async def build(self, server: Server, recorder: Recorder) -> None:
        lib = server.library
        self.solo = {}
        self.solo["completed"] = await submit(server)
        lease = await claim(server)
        assert lease is not None
        await execution_fns.complete_execution(lib, lease.execution_id, result=b"r",
                                               source="worker", **fence(lease))
        self.solo["active"] = await submit(server)
        lease = await claim(server, ttl_ms=60_000)
        assert lease is not None
        stream_fence = sf.Fence(lease.lease_id, lease.lease_epoch, lease.attempt_id,
                                lease.attempt_index)
        for n in range(3):
            await sf.append_frame(lib, lease.execution_id, stream_fence,
                                  sf.AppendFrame(payload=f"frame {n}".encode()))
        await sf.read_attempt_stream(lib, lease.execution_id, lease.attempt_index,
                                     from_id="-", to_id="+", count=10)
        await sf.read_summary(lib, lease.execution_id, lease.attempt_index)
        await scheduling_fns.update_progress(lib, lease.execution_id, lease_id=lease.lease_id,
                                             lease_epoch=lease.lease_epoch,
                                             progress_pct=10, message="m")
        self.solo["suspended"] = await submit(server)
        lease = await claim(server)
        assert lease is not None
        out = await suspend(server, lease, cond.signals("approve", "other", mode="all"))
        self.waitpoint_id = out.waitpoint_id
        await server.deliver_signal(self.solo["suspended"], DeliverSignalArgs(
            waitpoint_id=out.waitpoint_id, signal_name="approve",
            waitpoint_token=out.waitpoint_token))
        self.solo["waiting"] = await submit(server, priority=3, tags={"a.b": "c"})
        await server.change_priority(self.solo["waiting"], 5)
        self.solo["delayed"] = await submit(
            server, delay_until=int(time.time() * 1000) + 3_600_000)
        cancelled = await submit(server)
        await server.cancel_execution(cancelled, CancelExecutionArgs(reason="fuzz"))
        self.solo["cancelled"] = cancelled

        dag = await Dag.create(server)
        await dag.node("up")
        self.member = await dag.node("down")
        await dag.join("down", "all_of")
        await dag.edge("up", "down")
        self.flow_id = dag.flow_id
        self.flow_tag = ExecKeys(self.member).tag

        budget = await server.create_budget(CreateBudgetArgs(
            dimensions=["tokens"], hard_limits=[100], soft_limits=[50]))
        assert budget.Created is not None
        budget_id = budget.Created.budget_id
        await server.report_usage(budget_id, ReportUsageArgs(
            dimensions={"tokens": 3}, dedup_key="d1", execution_id=self.solo["active"]))
        self.budget = (budget_id, _tag_of(recorder.calls["ff_create_budget"][0][0]))
        quota = await server.create_quota_policy(CreateQuotaPolicyArgs(
            max_requests_per_window=10, max_concurrent=2))
        assert quota.Created is not None
        self.quota = (quota.Created.quota_policy_id,
                      _tag_of(recorder.calls["ff_create_quota_policy"][0][0]))
        await scheduling_fns.register_worker(lib, "ns", "inst-1", worker_id="w",
                                             lanes_csv="default", caps_csv="gpu", ttl_ms=60_000)


def _tag_of(key: str) -> str:
    return key[key.index("{"): key.index("}") + 1]


FLOW_WORDS = ("flow", "edgegroup", "pending_cancel", "child", "upstream")


def uses_flow(header: Header) -> bool:
    return any(word in description for description in header.keys for word in FLOW_WORDS)


def resolve_key(description: str, data: DataSet, eid: str) -> str:
    """A concrete key of the data set for one KEYS description of a header."""
    tag = ExecKeys(eid).tag
    flow = FlowKeys(data.flow_id, data.flow_tag)
    exec_keys = ExecKeys(eid)
    if "ff:" in description:
        pattern = description[description.index("ff:"):].split()[0]
        budget_id, budget_tag = data.budget
        quota_id, quota_tag = data.quota
        for placeholder, value in (
            ("{fp:N}", tag), ("{fp:H}", tag), ("{b:M}", budget_tag), ("<bid>", budget_id),
            ("{q:K}", quota_tag), ("<qid>", quota_id), ("<eid>", eid), ("<lane>", "default"),
            ("{<ns>}", "{ns}"), ("<instance>", "inst-1"),
        ):
            pattern = pattern.replace(placeholder, value)
        assert "<" not in pattern and "{" in pattern, (description, pattern)
        return pattern
    named = {
        "flow core": flow.core, "flow pending_cancels": flow.pending_cancels,
        "flow tags": flow.tags, "edgegroup of the downstream": flow.edge_group(eid),
        "stream": exec_keys.stream(0), "stream meta": exec_keys.stream_meta(0),
        "attempt summary": exec_keys.attempt_summary(0), "attempt hash": exec_keys.attempt(0),
        "waitpoint hash": waitpoint_key(tag, data.waitpoint_id),
    }
    if description in named:
        return named[description]
    assert "exec core" in description, f"no resolver for KEYS description {description!r}"
    return exec_keys.core


def resolve_arg(description: str, data: DataSet, eid: str) -> str:
    word = description.split()[0] if description else ""
    return {"execution_id": eid, "lane_id": "default", "flow_id": data.flow_id,
            "budget_id": data.budget[0], "waitpoint_id": data.waitpoint_id,
            "worker_instance_id": "inst-1"}.get(word, "1")


def baselines(header: Header, recorded: dict[str, tuple[list[str], list[Any]]],
              data: DataSet) -> list[tuple[list[str], list[Any]]]:
    """The calls to mutate: the recorded one (or one from the header), and for a function
    of one solo execution the same call on an execution in each other state."""
    if header.name in recorded:
        keys, args = recorded[header.name]
    else:
        eid = data.member if uses_flow(header) else data.solo["active"]
        keys = [resolve_key(d, data, eid) for d in header.keys]
        args = [resolve_arg(d, data, eid) for d in header.args]
    calls = [(keys, args)]
    solo = [e for e in data.solo.values() if keys and keys[0] == ExecKeys(e).core]
    if solo:
        [own] = solo
        for other in data.solo.values():
            if other != own:
                calls.append(([k.replace(own, other) for k in keys],
                              [a.replace(own, other) if isinstance(a, str) else a
                               for a in args]))
    return calls


def mutations(header: Header, base: list[Any], rng: random.Random, *, full: bool
              ) -> list[tuple[str, list[Any]]]:
    """(what, ARGV) for every position of the header (and of a longer baseline): the list
    cut there, then each bad value in its place; plus one extra trailing argument. Not
    `full`: a random quarter of them (the same function on another execution's state)."""
    width = max(len(header.args), len(base))
    base = [*base, *[""] * (width - len(base))]
    out: list[tuple[str, list[Any]]] = [("extra argument", [*base, "extra"])]
    for i in range(width):
        out.append((f"ARGV[{i + 1}..] missing", base[:i]))
        for value in BAD_VALUES:
            label = "1 MiB" if value is OVERSIZED else repr(value)
            out.append((f"ARGV[{i + 1}]={label}", [*base[:i], value, *base[i + 1:]]))
    if header.variadic:
        out.append(("long tail", [*base, *(rng.choice(BAD_VALUES[:10]) for _ in range(40))]))
    return out if full else rng.sample(out, len(out) // 4)


async def fcall(server: Server, name: str, keys: list[str], args: list[Any]) -> Any:
    return await server.client.execute("FCALL", name, len(keys), *keys, *args,
                                       timeout=CALL_TIMEOUT_S)


@pytest.mark.slow
async def test_rejected_calls_answer_an_envelope_and_write_nothing(server_url: str) -> None:
    # No completion listener: it would write (resolve completions that accepted calls
    # published) while later calls are being compared.
    async with Server.running(engine_config(server_url, completion_listener=False)) as server:
        recorder = Recorder(server)
        data = DataSet()
        await data.build(server, recorder)
        found = headers(library_source())
        assert len(found) > 60
        rng = random.Random(1616)
        started = time.monotonic()
        problems: list[str] = []
        counts = {"calls": 0, "rejected": 0, "accepted": 0}
        for header in found:
            for n, (keys, base) in enumerate(baselines(header, recorder.calls, data)):
                tag = _tag_of(keys[0]) if keys else "{none}"
                state = await snapshot(server, tag)
                for what, args in mutations(header, base, rng, full=n == 0):
                    where = f"{header.name} {what} keys={keys}"
                    counts["calls"] += 1
                    try:
                        with trio.fail_after(CALL_TIMEOUT_S + 1):
                            reply = await fcall(server, header.name, keys, args)
                    except ResponseError as exc:
                        problems.append(f"{where}: script error {str(exc)[:200]}")
                        reply = None
                    after = await snapshot(server, tag)
                    rejected = isinstance(reply, list) and reply[:1] == [0]
                    accepted = isinstance(reply, list) and reply[:1] == [1]
                    if reply is not None and not rejected and not accepted and header.keys:
                        problems.append(f"{where}: not an envelope: {reply!r:.200}")
                    counts["rejected" if rejected else "accepted"] += 1
                    if rejected and not same(state, after):
                        problems.append(f"{where}: rejected ({reply[1]!r}) but wrote "
                                        f"{changed(state, after)}")
                    if not same(state, after):
                        # A restored key may come back in another encoding (a small set
                        # as a listpack): the restored tag is the new reference.
                        await restore(server, tag, state)
                        state = await snapshot(server, tag)
        print(counts, f"{time.monotonic() - started:.1f} s")
        assert not problems, "\n".join(problems[:60]) + f"\n({len(problems)} problems)"


# What the fuzzer found (each was a script error): a missing execution id reached a key
# name or an index command, a 1e400 TTL reached SET PX.
FOUND = (
    ("ff_mark_lease_expired_if_due", "exec", ()),
    ("ff_expire_execution", "exec", ()),
    ("ff_expire_suspension", "exec", ()),
    ("ff_cancel_execution", "exec", ()),
    ("ff_resume_execution", "exec", ()),
    ("ff_purge_execution", "exec", ("<eid>",)),
    ("ff_promote_delayed", "exec", ("<eid>",)),
    ("ff_register_worker", "worker", ("i", "w", "default", "", "1e400")),
    ("ff_register_worker", "worker", ("i", "w", "default", "", "9" * 40)),
    ("ff_deregister_worker", "worker", ()),
    ("ff_ack_cancel_member", "flow", ()),
    ("ff_reset_budget", "budget", ()),
)


@pytest.mark.parametrize(("name", "keys_of", "args"), FOUND)
async def test_found_cases_answer_an_envelope(server_url: str, name: str, keys_of: str,
                                              args: tuple[str, ...]) -> None:
    async with Server.running(engine_config(server_url)) as server:
        eid = await submit(server)
        tag = ExecKeys(eid).tag
        keys = {
            "exec": [ExecKeys(eid).core],
            "worker": ["ff:worker:{ns}:i:alive", "ff:worker:{ns}:i:caps", "ff:idx:{ns}:workers"],
            "flow": [f"ff:flow:{tag}:f:pending_cancels", f"ff:idx:{tag}:cancel_backlog"],
            "budget": ["ff:budget:{b:0}:b", "ff:budget:{b:0}:b:usage",
                       "ff:idx:{b:0}:budget_resets"],
        }[keys_of]
        await server.client.execute("HSET", "ff:budget:{b:0}:b", "reset_interval_ms", "0")
        before = await snapshot(server, _tag_of(keys[0]))
        reply = await fcall(server, name, keys, [a.replace("<eid>", eid) for a in args])
        assert reply[0] == 0, reply
        assert same(before, await snapshot(server, _tag_of(keys[0])))
