"""Suspend, signals and HMAC tokens against a real server, through the Server API and the
typed wrappers (the worker SDK and HTTP are tested in their own suites)."""

from __future__ import annotations

import random

import pytest
import trio

from ff.core import conditions as cond
from ff.core.errors import FFError
from ff.core.hmac import waitpoint_token
from ff.core.keys import ExecKeys, keystore_key, waitpoint_key
from ff.core.partitions import flow_tag
from ff.core.records import DeliverSignalArgs, LeaseHandle
from ff.script import waitpoint as wp
from ff.server import Server

from .conftest import SECRET, claim, core_field, engine_config, fence, submit

pytestmark = pytest.mark.compat


async def suspend(server: Server, lease: LeaseHandle, condition: dict | None = None, *,
                  keys: list[str] | None = None, timeout_ms: int | None = None,
                  behavior: str = "fail", pending: tuple[str, str] | None = None,
                  suspension_id: str | None = None):
    from ff.core.ids import new_uuid

    condition_json, named = cond.plan_condition(condition or {})
    named = keys or named
    if pending:
        wp_id, key = pending
        extra: list[tuple[str, str]] = []
    else:
        wp_id = new_uuid()
        key = named[0] if named else f"wpk:{wp_id}"
        extra = [(new_uuid(), k) for k in named[1:]]
    return await wp.suspend_execution(
        server.library, lease.execution_id, suspension_id=suspension_id or new_uuid(),
        waitpoint_id=wp_id, waitpoint_key=key, reason_code="waiting_for_approval",
        requested_by="worker", timeout_ms=timeout_ms, timeout_behavior=behavior,
        condition_json=condition_json, use_pending=pending is not None, additional=extra,
        **fence(lease))


def signal(wp_id: str, token: str, name: str = "approve", **fields) -> DeliverSignalArgs:
    return DeliverSignalArgs(waitpoint_id=wp_id, signal_name=name, waitpoint_token=token,
                             **fields)


async def snapshot(server: Server, eid: str) -> dict:
    """Every key of the execution's partition with its type and content size, to prove
    that a rejected call wrote nothing."""
    tag = ExecKeys(eid).tag
    keys = sorted(k.decode() for k in await server.client.execute("KEYS", f"*{tag}*"))
    out = {}
    for key in keys:
        kind = (await server.client.execute("TYPE", key)).decode()
        if kind == "hash":
            raw = await server.client.execute("HGETALL", key)
            out[key] = sorted((k, v) for k, v in raw.items())
        elif kind == "zset":
            out[key] = await server.client.execute("ZRANGE", key, 0, -1, "WITHSCORES")
        elif kind == "set":
            out[key] = sorted(await server.client.execute("SMEMBERS", key))
        elif kind == "stream":
            out[key] = await server.client.execute("XLEN", key)
        else:
            out[key] = await server.client.execute("GET", key)
    return out


async def test_token_is_the_python_scheme_and_round_trip(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease, cond.signals("approve"))
    assert out.state == "suspended" and out.waitpoint_token.startswith("k1:")
    created = await server.client.execute("HGET", waitpoint_key(ExecKeys(eid).tag,
                                                                out.waitpoint_id), "created_at")
    assert out.waitpoint_token == waitpoint_token("k1", SECRET, out.waitpoint_id,
                                                  out.waitpoint_key, created.decode())
    assert await server.get_execution_state(eid) == "suspended"
    [info] = await server.list_pending_waitpoints(eid)
    assert info.state == "active" and info.required_signal_names == ["approve"]
    assert info.token_kid == "k1" and out.waitpoint_token[3:].startswith(info.token_fingerprint)
    assert await server.get_waitpoint_token(eid, out.waitpoint_id) == out.waitpoint_token
    got = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                  payload='{"ok": true}'))
    assert got.effect == "resume_condition_satisfied"
    assert await server.get_execution_state(eid) == "waiting"
    assert await server.list_pending_waitpoints(eid) == []
    resumed = await claim(server)
    assert resumed.attempt_type == "resumed"
    assert resumed.attempt_index == lease.attempt_index
    assert resumed.attempt_id == lease.attempt_id
    [sig] = resumed.resume_signals
    assert (sig.name, sig.json(), sig.signal_id) == ("approve", {"ok": True}, got.signal_id)
    # Replayed after close: the token is genuine, the waitpoint is not open any more.
    with pytest.raises(FFError) as caught:
        await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token))
    assert caught.value.code in ("waitpoint_closed", "target_not_signalable")
    from ff.script import execution as ex

    assert await ex.complete_execution(server.library, eid, **fence(resumed))


async def test_repeated_suspend_returns_the_same_waitpoint(server: Server) -> None:
    await submit(server)
    lease = await claim(server)
    first = await suspend(server, lease, suspension_id="s-1")
    again = await suspend(server, lease, suspension_id="s-1")
    assert (again.waitpoint_id, again.waitpoint_token) == (first.waitpoint_id,
                                                          first.waitpoint_token)


async def test_any_of_two_waitpoints(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease, cond.composite(cond.any_of("email", "slack")))
    assert out.waitpoint_key == "email" and len(out.additional_waitpoints) == 1
    slack_id, slack_key, slack_token = out.additional_waitpoints[0]
    assert slack_key == "slack"
    assert len(await server.list_pending_waitpoints(eid)) == 2
    got = await server.deliver_signal(eid, signal(slack_id, slack_token, "reply"))
    assert got.effect == "resume_condition_satisfied"
    assert await server.get_execution_state(eid) == "waiting"
    assert await server.list_pending_waitpoints(eid) == []


async def test_count_two_distinct_sources(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease, cond.composite(
        cond.count(2, "sources", ["review"], name="approve")))
    args = {"source_type": "human"}
    a = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                source_identity="alice", **args))
    assert a.effect == "appended_to_waitpoint"
    again = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                    source_identity="alice", **args))
    assert again.effect == "appended_to_waitpoint_duplicate"
    other = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                    "reject", source_identity="bob", **args))
    assert other.effect == "signal_ignored_matcher_failed"
    b = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                source_identity="bob", **args))
    assert b.effect == "resume_condition_satisfied"
    resumed = await claim(server)
    assert [s.source_identity for s in resumed.resume_signals] == ["alice", "bob"]


async def test_all_of_names_on_one_waitpoint(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease, cond.signals("legal", "finance", mode="all"))
    first = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                    "legal"))
    assert first.effect == "appended_to_waitpoint"
    noise = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                    "other"))
    assert noise.effect == "no_op"
    last = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                   "finance"))
    assert last.effect == "resume_condition_satisfied"


async def test_duplicate_signal_by_idempotency_key(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease, cond.signals(mode="count", minimum=2))
    one = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                  idempotency_key="k"))
    dup = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                  idempotency_key="k"))
    assert dup.duplicate and dup.signal_id == one.signal_id
    assert await server.get_execution_state(eid) == "suspended"
    assert await server.client.execute("ZCARD", ExecKeys(eid).signals) == 1


async def test_signal_buffered_on_pending_waitpoint(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    pending = await wp.create_pending_waitpoint(
        server.library, eid, waitpoint_id="0b9c0c2e-2f5e-4a53-9f0b-7d7f0e6f6a10",
        waitpoint_key="callback", expires_in_ms=60_000, **fence(lease))
    [info] = await server.list_pending_waitpoints(eid)
    assert info.state == "pending" and info.expires_at
    got = await server.deliver_signal(eid, signal(pending.waitpoint_id,
                                                  pending.waitpoint_token, "done"))
    assert got.effect == "buffered_for_pending_waitpoint"
    assert await server.get_execution_state(eid) == "active"
    out = await suspend(server, lease, cond.signals("done"),
                        pending=(pending.waitpoint_id, pending.waitpoint_key))
    assert out.state == "resumed" and out.waitpoint_token == pending.waitpoint_token
    assert await server.get_execution_state(eid) == "waiting"
    resumed = await claim(server)
    assert [s.signal_id for s in resumed.resume_signals] == [got.signal_id]


async def test_pending_waitpoint_not_yet_satisfied_waits(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    pending = await wp.create_pending_waitpoint(
        server.library, eid, waitpoint_id="1b9c0c2e-2f5e-4a53-9f0b-7d7f0e6f6a10",
        waitpoint_key="cb", expires_in_ms=60_000, **fence(lease))
    out = await suspend(server, lease, cond.signals("done"),
                        pending=(pending.waitpoint_id, pending.waitpoint_key))
    assert out.state == "suspended"
    got = await server.deliver_signal(eid, signal(pending.waitpoint_id,
                                                  pending.waitpoint_token, "done"))
    assert got.effect == "resume_condition_satisfied"


@pytest.mark.parametrize(("behavior", "state"), [
    ("fail", "failed"), ("cancel", "cancelled"), ("expire", "expired"),
    ("auto_resume", "waiting"), ("escalate", "suspended"),
])
async def test_timeout_behaviours(server: Server, behavior: str, state: str) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease, timeout_ms=1, behavior=behavior)
    await trio.sleep(0.01)
    got = await wp.expire_suspension(server.library, eid)
    assert (got.outcome, got.public_state) == (behavior, state)
    assert await server.get_execution_state(eid) == state
    if behavior == "auto_resume":
        resumed = await claim(server)
        assert [s.name for s in resumed.resume_signals] == ["__timeout__"]
    if behavior == "escalate":
        assert await core_field(server, eid, "blocking_reason") == "paused_by_operator"
        again = await wp.expire_suspension(server.library, eid)
        assert again.outcome == "not_yet_due"
        sent = await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token))
        assert sent.effect == "resume_condition_satisfied"
    if state in ("failed", "cancelled", "expired"):
        with pytest.raises(FFError) as caught:
            await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token))
        assert caught.value.code == "target_not_signalable"


async def test_signal_cap(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease, cond.signals(mode="count", minimum=5))
    await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                            max_signals_per_execution=1))
    before = await snapshot(server, eid)
    with pytest.raises(FFError) as caught:
        await server.deliver_signal(eid, signal(out.waitpoint_id, out.waitpoint_token,
                                                max_signals_per_execution=1))
    assert caught.value.code == "signal_limit_exceeded" and caught.value.status == 400
    assert await snapshot(server, eid) == before


async def test_rotation_with_grace(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    old = await suspend(server, lease, cond.signals(mode="count", minimum=3))
    rotated = await server.rotate_waitpoint_secret("k2", "11" * 32)
    assert (rotated.rotated, rotated.failed) == (4, [])
    again = await server.rotate_waitpoint_secret("k2", "11" * 32)
    assert again.rotated == 4
    with pytest.raises(FFError) as conflict:
        await server.rotate_waitpoint_secret("k2", "22" * 32)
    assert conflict.value.code == "rotation_conflict"
    current, kids = await server.list_waitpoint_hmac_kids(0)
    assert current == "k2" and "k1" in kids
    got = await server.deliver_signal(eid, signal(old.waitpoint_id, old.waitpoint_token))
    assert got.effect == "appended_to_waitpoint"
    # The grace ends: the old kid's tokens are token_expired, and nothing is written.
    tag = ExecKeys(eid).tag
    await server.client.execute("HSET", keystore_key(tag), "expires_at:k1", "1")
    before = await snapshot(server, eid)
    with pytest.raises(FFError) as expired:
        await server.deliver_signal(eid, signal(old.waitpoint_id, old.waitpoint_token))
    assert expired.value.code == "token_expired"
    assert await snapshot(server, eid) == before
    # New suspensions sign with k2.
    eid2 = await submit(server)
    lease2 = await claim(server)
    assert eid2 == lease2.execution_id
    new = await suspend(server, lease2)
    assert new.waitpoint_token.startswith("k2:")


@pytest.mark.cluster
async def test_a_rotation_through_one_server_holds_for_another(server_url: str) -> None:
    """The keystore lives in Valkey, one per partition: what one server rotates, every
    server signs and checks with."""
    config = engine_config(server_url)
    async with Server.running(config) as a, Server.running(config) as b:
        await submit(b)
        old = await suspend(b, await claim(b))
        await a.rotate_waitpoint_secret("k2", "11" * 32)
        eid = await submit(b)
        lease = await claim(b)
        assert lease is not None and lease.execution_id == eid
        new = await suspend(b, lease)
        assert (old.waitpoint_token[:3], new.waitpoint_token[:3]) == ("k1:", "k2:")
        got = await a.deliver_signal(eid, signal(new.waitpoint_id, new.waitpoint_token))
        assert got.effect == "resume_condition_satisfied"


async def test_unknown_execution_or_waitpoint_answers_like_a_bad_token(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease)
    other = f"{flow_tag(ExecKeys(eid).tag and 1)}:00000000-0000-4000-8000-000000000000"
    for target, wp_id in ((other, out.waitpoint_id), (eid, "nope")):
        with pytest.raises(FFError) as caught:
            await server.deliver_signal(target, signal(wp_id, out.waitpoint_token))
        assert caught.value.code == "invalid_token" and caught.value.status == 400
    with pytest.raises(FFError) as missing:
        await server.deliver_signal(eid, signal(out.waitpoint_id, ""))
    assert missing.value.code == "missing_token"


async def test_mutated_tokens_are_never_accepted(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    out = await suspend(server, lease)
    token = out.waitpoint_token
    before = await snapshot(server, eid)
    rng = random.Random(10)
    alphabet = "0123456789abcdefk:ABCDEF"
    seen = set()
    while len(seen) < 1000:
        chars = list(token)
        kind = rng.randrange(4)
        if kind == 0:  # substitute one character
            i = rng.randrange(len(chars))
            chars[i] = rng.choice([c for c in alphabet if c != chars[i].lower()
                                   and c != chars[i]])
        elif kind == 1:  # truncate
            chars = chars[: rng.randrange(len(chars))]
        elif kind == 2:  # insert
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(alphabet))
        else:  # swap two different characters
            i, j = rng.sample(range(len(chars)), 2)
            if chars[i] == chars[j]:
                continue
            chars[i], chars[j] = chars[j], chars[i]
        mutated = "".join(chars)
        if mutated.lower() == token.lower() or mutated in seen:
            continue
        seen.add(mutated)
        with pytest.raises(FFError) as caught:
            await server.deliver_signal(eid, signal(out.waitpoint_id, mutated))
        assert caught.value.code in ("invalid_token", "missing_token", "token_expired")
    assert await snapshot(server, eid) == before
    assert await server.get_execution_state(eid) == "suspended"


async def test_malformed_conditions_write_nothing(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    before = await snapshot(server, eid)
    for raw in ('{"composite": true, "v": 2, "tree": {"kind": "Single"}}',
                '{"composite": true, "v": 1, "tree": {"kind": "Bogus"}}',
                '{"signal_match_mode": "most"}', "[1, 2]", "not json"):
        with pytest.raises(FFError) as caught:
            await wp.suspend_execution(
                server.library, eid, suspension_id="s", waitpoint_id="w", waitpoint_key="k",
                reason_code="", requested_by="", timeout_ms=None, timeout_behavior="fail",
                condition_json=raw, use_pending=False, **fence(lease))
        assert caught.value.code == "invalid_resume_condition"
    assert await snapshot(server, eid) == before
    for bad in ({"composite": True, "v": 1, "tree": {"kind": "AllOf", "members": []}},
                {"required_signal_names": "x"}, {"minimum_signal_count": 0}):
        with pytest.raises(FFError):
            cond.plan_condition(bad)


async def test_scanners_time_out_suspensions_and_close_pending_waitpoints(
        server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    pending = await wp.create_pending_waitpoint(
        server.library, eid, waitpoint_id="2b9c0c2e-2f5e-4a53-9f0b-7d7f0e6f6a10",
        waitpoint_key="cb", expires_in_ms=1, **fence(lease))
    await trio.sleep(0.01)
    assert await server.engine.scanner("pending_wp_expiry").run_once() == 1
    assert await server.list_pending_waitpoints(eid) == []
    with pytest.raises(FFError) as closed:
        await server.deliver_signal(eid, signal(pending.waitpoint_id, pending.waitpoint_token))
    assert closed.value.code == "waitpoint_closed"
    await suspend(server, lease, timeout_ms=1, behavior="expire")
    await trio.sleep(0.01)
    assert await server.engine.scanner("suspension_timeout").run_once() == 1
    assert await server.get_execution_state(eid) == "expired"
    assert await server.engine.scanner("suspension_timeout").run_once() == 0
