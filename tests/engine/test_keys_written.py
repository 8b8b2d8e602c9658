"""Every key the library writes is one the Python key builders (ff/core/keys.py) name:
the two sides derive the same names, checked on what a real run leaves in Valkey."""

from __future__ import annotations

import pytest

from ff.core.ids import ExecutionId
from ff.core.keys import (
    CONFIG_PARTITIONS,
    LANES,
    ExecKeys,
    IndexKeys,
    idempotency_key,
    keystore_key,
    lane_work_hint,
)
from ff.core.policy import ExecutionPolicy, FixedBackoff, RetryPolicy, TimeoutPolicy
from ff.core.states import LIVE_LANE_INDEXES
from ff.script import execution as fns
from ff.script import lease as lease_fns
from ff.script import scheduling as scheduling_fns
from ff.script.library import text
from ff.server import Server
from tests.engine.conftest import TEST_PARTITIONS, claim, fence, submit

pytestmark = [pytest.mark.compat, pytest.mark.cluster]


def _builder_keys(eids: list[str], worker_instances: list[str]) -> set[str]:
    names = set()
    for p in range(TEST_PARTITIONS.num_flow_partitions):
        idx = IndexKeys(p)
        names |= {idx.lane("default", n)
                  for n in (*LIVE_LANE_INDEXES, "terminal", "terminal_counts")}
        names |= {idx.lease_expiry, idx.attempt_timeout, idx.execution_deadline,
                  idx.suspension_timeout, idx.all_executions}
        names |= {idx.worker_leases(w) for w in worker_instances}
        names.add(keystore_key(idx.tag))
    for eid in eids:
        keys = ExecKeys(eid)
        names |= {keys.core, keys.payload, keys.result, keys.policy, keys.tags, keys.attempts,
                  keys.lease_current, keys.lease_history, keys.claim_grant}
        names |= {keys.attempt(i) for i in range(3)}
        names.add(idempotency_key(keys.tag, "default", f"idem-{eid[-4:]}"))
    names.add(lane_work_hint("default", TEST_PARTITIONS.lane_partition("default")))
    return names | {CONFIG_PARTITIONS, LANES}


async def test_every_key_written_is_named_by_a_python_builder(server: Server) -> None:
    policy = ExecutionPolicy(
        retry_policy=RetryPolicy(max_retries=1, backoff=FixedBackoff(60_000)),
        timeout_policy=TimeoutPolicy(attempt_timeout_ms=60_000, execution_deadline_ms=60_000))
    eids = []
    for _ in range(3):
        eid = ExecutionId.solo("default", TEST_PARTITIONS, 1)
        eids.append(eid)
        await submit(server, execution_id=eid, idempotency_key=f"idem-{eid[-4:]}",
                     input_payload="p", tags={"app.k": "v"}, policy=policy)
    done, retried, revoked = [await claim(server) for _ in range(3)]
    assert done and retried and revoked
    await scheduling_fns.update_progress(server.library, done.execution_id,
                                         lease_id=done.lease_id, lease_epoch=done.lease_epoch,
                                         progress_pct=5)
    await fns.complete_execution(server.library, done.execution_id, result=b"r", **fence(done))
    await fns.fail_execution(server.library, retried.execution_id, category="x",
                             **fence(retried))
    await lease_fns.revoke_lease(server.library, revoked.execution_id)

    written = {text(k) async for k in server.client.scan_iter()}
    unknown = written - _builder_keys(eids, ["w1-i"])
    assert not unknown, f"keys no Python builder names: {sorted(unknown)}"
    assert ExecKeys(done.execution_id).result in written
