"""Every key carries a hash tag and every multi-key call stays inside one: what a cluster
needs. Checked on the key builders and on what a run of the lifecycle, the scheduler
(through the lane's work hints) and every scanner leaves in Valkey."""

from __future__ import annotations

import pytest

from ff.core.keys import (
    CONFIG_PARTITIONS,
    LANES,
    ExecKeys,
    IndexKeys,
    WorkerKeys,
    idempotency_key,
    keystore_key,
    lane_work_hint,
)
from ff.core.policy import ExecutionPolicy, FixedBackoff, RetryPolicy
from ff.resp.slots import hash_tag
from ff.script import execution as fns
from ff.script.library import FunctionLibrary, text
from ff.server import Server
from tests.engine.conftest import claim, engine_config, fence, submit

pytestmark = [pytest.mark.compat, pytest.mark.cluster]

EID = "{fp:7}:11111111-2222-4333-8444-555555555555"


def _untagged(keys: list[str]) -> list[str]:
    return [k for k in keys if hash_tag(k.encode()) == k.encode()]


def test_every_key_builder_names_a_tagged_key() -> None:
    ek, idx, workers = ExecKeys(EID), IndexKeys(7), WorkerKeys("default")
    built = [
        ek.core, ek.payload, ek.result, ek.policy, ek.tags, ek.attempts, ek.signals,
        ek.waitpoints, ek.lease_current, ek.lease_history, ek.claim_grant,
        ek.suspension_current, ek.attempt(0), ek.stream(0), ek.stream_meta(0),
        idx.lane("l", "eligible"), idx.lease_expiry, idx.attempt_timeout,
        idx.execution_deadline, idx.suspension_timeout, idx.all_executions,
        idx.worker_leases("w"), keystore_key(idx.tag), idempotency_key(idx.tag, "n", "k"),
        workers.index, workers.alive("w"), workers.caps("w"), lane_work_hint("l", 3),
        CONFIG_PARTITIONS, LANES,
    ]
    assert _untagged(built) == []


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    """Every library call's name and keys, recorded on the way through."""
    seen: list[tuple[str, tuple[str, ...]]] = []
    original = FunctionLibrary.call

    async def recording(self: FunctionLibrary, name: str, keys, args):  # type: ignore[no-untyped-def]
        seen.append((name, tuple(keys)))
        return await original(self, name, keys, args)

    monkeypatch.setattr(FunctionLibrary, "call", recording)
    return seen


async def test_a_run_leaves_only_tagged_keys_and_calls_stay_in_one_tag(
    server_url: str, calls: list[tuple[str, tuple[str, ...]]],
) -> None:
    policy = ExecutionPolicy(retry_policy=RetryPolicy(max_retries=1, backoff=FixedBackoff(0)))
    async with Server.running(engine_config(server_url, lane_spread=0)) as server:
        for i in range(6):
            await submit(server, idempotency_key=f"k{i}", input_payload="p", policy=policy,
                         tags={"app.k": "v"})
        done, failed = await claim(server), await claim(server)
        assert done and failed
        await fns.complete_execution(server.library, done.execution_id, result=b"r",
                                     **fence(done))
        await fns.fail_execution(server.library, failed.execution_id, category="x",
                                 **fence(failed))
        for scanner in server.engine.scanners:
            await scanner.run_once()
        while await claim(server) is not None:
            pass
        written = [text(k) async for k in server.client.scan_iter()]
    assert written and _untagged(written) == []
    assert calls
    spanning = [(name, keys) for name, keys in calls
                if len({hash_tag(k.encode()) for k in keys}) > 1]
    assert spanning == []
