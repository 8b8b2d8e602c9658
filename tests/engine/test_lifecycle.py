"""The execution lifecycle against a real server: claim, lease, complete, fail, retry,
delay, cancel, replay, fencing and idempotent terminal calls."""

from __future__ import annotations

import pytest
import trio

from ff.core.errors import (
    ContentionError,
    ExecutionNotActiveError,
    NotFoundError,
    StateConflictError,
    ValidationError,
)
from ff.core.keys import ExecKeys
from ff.core.policy import (
    ExecutionPolicy,
    ExponentialBackoff,
    FixedBackoff,
    RetryPolicy,
    RoutingRequirements,
)
from ff.core.records import CancelExecutionArgs
from ff.core.states import transitions_for
from ff.script import execution as fns
from ff.script import lease as lease_fns
from ff.server import Server
from tests.engine.conftest import claim, core_field, fence, submit

pytestmark = [pytest.mark.compat, pytest.mark.cluster]


async def state_vector(server: Server, eid: str) -> dict[str, str]:
    info = await server.get_execution(eid)
    return {
        "phase": info.state_vector.lifecycle_phase,
        "ownership": info.state_vector.ownership_state,
        "eligibility": info.state_vector.eligibility_state,
        "blocking": info.state_vector.blocking_reason,
        "outcome": info.state_vector.terminal_outcome,
        "attempt": info.state_vector.attempt_state,
        "public": info.public_state,
    }


async def assert_matches_transition(server: Server, eid: str, function: str) -> None:
    """What Lua wrote equals one row of ff.core.states.TRANSITIONS for `function`."""
    actual = await state_vector(server, eid)
    for t in transitions_for(function):
        expected = {"phase": t.phase, "ownership": t.ownership, "eligibility": t.eligibility,
                    "blocking": t.blocking, "outcome": t.outcome, "attempt": t.attempt,
                    "public": t.public}
        if all(v is None or actual[k] == v for k, v in expected.items()):
            return
    raise AssertionError(f"{function} wrote {actual}, not in the transition table")


async def test_full_lifecycle(server: Server) -> None:
    eid = await submit(server, "email", input_payload="hello", tags={"app.team": "a"})
    await assert_matches_transition(server, eid, "ff_create_execution")
    assert await server.get_execution_state(eid) == "waiting"
    lease = await claim(server)
    assert lease is not None
    assert (lease.execution_id, lease.attempt_index, lease.attempt_type) == (eid, 0, "initial")
    assert (lease.payload, lease.execution_kind) == (b"hello", "email")
    assert lease.tags == {"app.team": "a"}
    await assert_matches_transition(server, eid, "ff_claim_execution")
    expires = await lease_fns.renew_lease(
        server.library, eid, attempt_index=0, lease_ttl_ms=60_000, **fence(lease))
    assert expires > lease.expires_at
    await fns.complete_execution(server.library, eid, result=b"\x00\xffdone", **fence(lease))
    await assert_matches_transition(server, eid, "ff_complete_execution")
    assert await server.get_execution_state(eid) == "completed"
    assert await server.get_execution_result(eid) == b"\x00\xffdone"
    info = await server.get_execution(eid)
    assert info.started_at and info.completed_at and info.execution_kind == "email"
    assert await claim(server, "w2") is None


async def test_priority_first_then_fifo_by_creation(server: Server) -> None:
    ids = []
    for priority in (1, 50, 1, 10):
        ids.append(await submit(server, priority=priority))
        await trio.sleep(0.002)  # FIFO is by creation millisecond
    low1, high, low2, mid = ids
    order = []
    for _ in range(4):
        lease = await claim(server)
        assert lease is not None
        order.append(lease.execution_id)
    assert order == [high, mid, low1, low2]


async def test_priority_is_clamped_and_changeable_while_waiting(server: Server) -> None:
    first = await submit(server, priority=-5)
    await trio.sleep(0.002)  # FIFO is by creation millisecond
    second = await submit(server, priority=99_999)
    assert await core_field(server, first, "priority") == "0"
    assert await core_field(server, second, "priority") == "9000"
    await server.change_priority(first, 9000)
    lease = await claim(server)
    assert lease is not None and lease.execution_id == first


async def test_retry_with_backoff_until_exhausted(server: Server) -> None:
    policy = ExecutionPolicy(retry_policy=RetryPolicy(max_retries=2, backoff=FixedBackoff(50)))
    eid = await submit(server, policy=policy)
    promoter = server.engine.scanner("delayed_promoter")
    for attempt in range(3):
        lease = await claim(server)
        assert lease is not None, f"attempt {attempt} not claimable"
        assert lease.attempt_index == attempt
        assert lease.attempt_type == ("initial" if attempt == 0 else "retry")
        reply = await fns.fail_execution(server.library, eid, reason="boom",
                                         category="handler_error", **fence(lease))
        if attempt < 2:
            assert reply.outcome == "retry_scheduled"
            await assert_matches_transition(server, eid, "ff_fail_execution")
            assert await claim(server) is None  # backing off
            await trio.sleep(0.06)
            assert await promoter.run_once() == 1
        else:
            assert reply.outcome == "terminal_failed"
    assert await server.get_execution_state(eid) == "failed"
    assert await core_field(server, eid, "retry_count") == "2"
    assert await core_field(server, eid, "failure_reason") == "boom"


async def test_exponential_backoff_grows_to_its_cap(server: Server) -> None:
    policy = ExecutionPolicy(retry_policy=RetryPolicy(
        max_retries=4, backoff=ExponentialBackoff(10, 100, 3.0)))
    eid = await submit(server, policy=policy)
    promoter = server.engine.scanner("delayed_promoter")
    delays = []
    for _ in range(4):
        lease = await claim(server)
        assert lease is not None
        failed = await fns.fail_execution(server.library, eid, category="x", **fence(lease))
        assert failed.retry_at is not None
        delay = failed.retry_at - int(await core_field(server, eid, "last_transition_at"))
        delays.append(delay)
        await trio.sleep(delay / 1000 + 0.005)
        await promoter.run_once()
    assert delays == [10, 30, 90, 100]


async def test_no_retry_policy_fails_at_once_and_non_retryable_skips_retries(
    server: Server,
) -> None:
    plain = await submit(server)
    lease = await claim(server)
    reply = await fns.fail_execution(server.library, plain, reason="x", **fence(lease))
    assert reply.outcome == "terminal_failed"
    policy = ExecutionPolicy(retry_policy=RetryPolicy(max_retries=5))
    retrying = await submit(server, policy=policy)
    lease = await claim(server)
    reply = await fns.fail_execution(server.library, retrying, reason="fatal",
                                     retryable=False, **fence(lease))
    assert reply.outcome == "terminal_failed"


async def test_retryable_categories_limit_retries(server: Server) -> None:
    policy = ExecutionPolicy(retry_policy=RetryPolicy(
        max_retries=5, backoff=FixedBackoff(0), retryable_categories=["transient"]))
    eid = await submit(server, policy=policy)
    lease = await claim(server)
    reply = await fns.fail_execution(server.library, eid, category="transient", **fence(lease))
    assert reply.outcome == "retry_scheduled"
    lease = await claim(server)  # zero backoff: eligible again at once
    reply = await fns.fail_execution(server.library, eid, category="bug", **fence(lease))
    assert reply.outcome == "terminal_failed"


async def test_delay_on_create_then_promotion(server: Server) -> None:
    server_now = await _server_ms(server)
    eid = await submit(server, delay_until=server_now + 100)
    await assert_matches_transition(server, eid, "ff_create_execution")
    assert await server.get_execution_state(eid) == "delayed"
    promoter = server.engine.scanner("delayed_promoter")
    assert await promoter.run_once() == 0
    assert await claim(server) is None
    await trio.sleep(0.12)
    assert await promoter.run_once() == 1
    await assert_matches_transition(server, eid, "ff_promote_delayed")
    lease = await claim(server)
    assert lease is not None and lease.execution_id == eid


async def test_past_delay_is_eligible_at_once(server: Server) -> None:
    eid = await submit(server, delay_until=1)
    assert await server.get_execution_state(eid) == "waiting"


async def test_worker_delay_resumes_the_same_attempt(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    until = await _server_ms(server) + 60
    await fns.delay_execution(server.library, eid, delay_until=until, **fence(lease))
    await assert_matches_transition(server, eid, "ff_delay_execution")
    await trio.sleep(0.08)
    assert await server.engine.scanner("delayed_promoter").run_once() == 1
    resumed = await claim(server, "w2")
    assert resumed is not None
    assert (resumed.attempt_type, resumed.attempt_index) == ("resumed", 0)
    assert int(resumed.lease_epoch) == int(lease.lease_epoch) + 1


async def test_cancel_in_every_phase(server: Server) -> None:
    waiting = await submit(server)
    delayed = await submit(server, delay_until=await _server_ms(server) + 60_000)
    active = await submit(server, lane_id="other")
    lease = await claim(server, lane="other")
    assert lease is not None
    for eid, phase in ((waiting, "runnable"), (delayed, "runnable")):
        result = await server.cancel_execution(eid, CancelExecutionArgs(reason="stop"))
        assert result.previous_phase == phase
        await assert_matches_transition(server, eid, "ff_cancel_execution")
    # A lease holder must name its lease; a wrong one is refused.
    with pytest.raises(ValidationError, match="fence_required"):
        await server.cancel_execution(active, CancelExecutionArgs(source="lease_holder"))
    with pytest.raises(ContentionError, match="stale_lease"):
        await server.cancel_execution(active, CancelExecutionArgs(
            source="lease_holder", lease_id=lease.lease_id, lease_epoch="99"))
    result = await server.cancel_execution(active, CancelExecutionArgs(
        source="lease_holder", lease_id=lease.lease_id, lease_epoch=lease.lease_epoch))
    assert result.previous_phase == "active"
    assert await core_field(server, active, "cancelled_by") == "lease_holder"
    # Cancelling again is idempotent; the old holder cannot complete any more.
    again = await server.cancel_execution(active, CancelExecutionArgs())
    assert again.previous_phase == "terminal"
    with pytest.raises(ExecutionNotActiveError) as info:
        await fns.complete_execution(server.library, active, **fence(lease))
    assert info.value.terminal_outcome == "cancelled"
    for eid in (waiting, delayed, active):
        assert await server.get_execution_state(eid) == "cancelled"
    assert await claim(server) is None and await claim(server, lane="other") is None
    # A completed execution cannot be cancelled.
    done = await submit(server)
    lease = await claim(server)
    await fns.complete_execution(server.library, done, **fence(lease))
    with pytest.raises(ExecutionNotActiveError):
        await server.cancel_execution(done, CancelExecutionArgs())


async def test_replay_runs_a_terminal_execution_again(server: Server) -> None:
    eid = await submit(server)
    with pytest.raises(StateConflictError, match="execution_not_terminal"):
        await server.replay_execution(eid)
    lease = await claim(server)
    await fns.fail_execution(server.library, eid, reason="bad", **fence(lease))
    assert await server.replay_execution(eid) == "waiting"
    await assert_matches_transition(server, eid, "ff_replay_execution")
    replayed = await claim(server)
    assert replayed is not None
    assert (replayed.attempt_type, replayed.attempt_index) == ("replay", 1)
    await fns.complete_execution(server.library, eid, **fence(replayed))
    assert await server.get_execution_state(eid) == "completed"


async def test_replay_limit(server: Server) -> None:
    eid = await submit(server, policy=ExecutionPolicy(max_replay_count=1))
    for _ in range(2):
        lease = await claim(server)
        await fns.complete_execution(server.library, eid, **fence(lease))
        if _ == 0:
            await server.replay_execution(eid)
    with pytest.raises(StateConflictError, match="max_replays_exhausted"):
        await server.replay_execution(eid)


async def test_stale_epoch_and_wrong_fences_are_rejected(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    bad_epoch = {**fence(lease), "lease_epoch": str(int(lease.lease_epoch) + 1)}
    with pytest.raises(ContentionError, match="stale_lease"):
        await fns.complete_execution(server.library, eid, **bad_epoch)
    with pytest.raises(ValidationError, match="partial_fence_triple"):
        await fns.complete_execution(server.library, eid, lease_id=lease.lease_id)
    with pytest.raises(ValidationError, match="fence_required"):
        await fns.complete_execution(server.library, eid)
    assert await server.get_execution_state(eid) == "active"


async def test_same_holder_terminal_call_is_idempotent(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    first = await fns.complete_execution(server.library, eid, result=b"r", **fence(lease))
    second = await fns.complete_execution(server.library, eid, result=b"r", **fence(lease))
    assert (first, second) == (True, False)
    other = {**fence(lease), "attempt_id": "00000000-0000-4000-8000-000000000000"}
    with pytest.raises(ExecutionNotActiveError) as info:
        await fns.complete_execution(server.library, eid, **other)
    assert info.value.terminal_outcome == "success"
    assert info.value.lease_epoch == lease.lease_epoch


async def test_operator_override_completes_without_a_fence(server: Server) -> None:
    eid = await submit(server)
    await claim(server)
    await fns.complete_execution(server.library, eid, source="operator_override")
    assert await server.get_execution_state(eid) == "completed"


async def test_idempotency_key_returns_the_original_execution(server: Server) -> None:
    first = await server.create_execution(
        _args(idempotency_key="order-1", namespace="shop"))
    again = await server.create_execution(
        _args(idempotency_key="order-1", namespace="shop"))
    other_ns = await server.create_execution(
        _args(idempotency_key="order-1", namespace="blog"))
    assert not first.duplicate and again.duplicate
    assert again.execution_id == first.execution_id
    assert other_ns.execution_id != first.execution_id


async def test_bad_input_is_rejected_before_any_write(server: Server) -> None:
    before = await server.client.execute("DBSIZE")
    with pytest.raises(ValidationError, match="invalid_lane_id"):
        await server.create_execution(_args(lane_id="bad\nlane"))
    with pytest.raises(ValidationError, match="invalid_execution_id"):
        await server.create_execution(_args(execution_id="nope"))
    with pytest.raises(ValidationError, match="invalid_input"):
        await server.create_execution(_args(execution_kind=""))
    with pytest.raises(ValidationError, match="invalid_capabilities"):
        await server.create_execution(_args(policy=ExecutionPolicy(
            routing_requirements=RoutingRequirements(required_capabilities=["has space"]))))
    with pytest.raises(ValidationError, match="invalid_input"):
        await server.create_execution(_args(input_payload=[1, 300]))
    with pytest.raises(NotFoundError):
        await server.get_execution("{fp:1}:00000000-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        await server.cancel_execution(
            "{fp:1}:00000000-0000-4000-8000-000000000000", CancelExecutionArgs())
    with pytest.raises(ValidationError):
        await server.claim_for_worker(lane_id="default", worker_id="w", worker_instance_id="i",
                                      grant_ttl_ms=0)
    assert await server.client.execute("DBSIZE") == before


async def test_list_executions_cursor_pages(server: Server) -> None:
    eids = sorted([await submit(server) for _ in range(5)])
    partition = int(eids[0][4 : eids[0].index("}")])
    first = await server.list_executions(partition, limit=2)
    assert first.executions == eids[:2] and first.next_cursor == eids[1]
    rest = await server.list_executions(partition, cursor=first.next_cursor, limit=10)
    assert rest.executions == eids[2:] and rest.next_cursor is None
    waiting = await server.list_executions(partition, lane="default", state="waiting")
    assert sorted(waiting.executions) == eids


def _args(**fields: object):
    from ff.core.records import CreateExecutionArgs

    fields.setdefault("execution_kind", "job")
    return CreateExecutionArgs(**fields)


async def _server_ms(server: Server) -> int:
    seconds, micros = await server.client.execute("TIME")
    return int(seconds) * 1000 + int(micros) // 1000


async def test_result_key_is_binary_safe(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    blob = bytes(range(256)) * 4
    await fns.complete_execution(server.library, eid, result=blob, **fence(lease))
    assert await server.client.execute("GET", ExecKeys(eid).result) == blob


async def test_worker_shutdown_hands_the_attempt_back_without_using_a_retry(
    server: Server,
) -> None:
    eid = await submit(server)  # no retry policy: an ordinary failure would be final
    lease = await claim(server)
    reply = await fns.fail_execution(server.library, eid, reason="deploy",
                                     category="worker_shutdown", **fence(lease))
    assert reply.outcome == "retry_scheduled"
    assert await core_field(server, eid, "retry_count") == "0"
    again = await claim(server, "w2")
    assert again is not None and again.attempt_type == "retry"
