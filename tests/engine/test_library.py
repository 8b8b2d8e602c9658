"""The function library: loading, reloading, and the smaller functions."""

from __future__ import annotations

import pytest
import trio

from ff.core.errors import ConflictError, ContentionError, ValidationError
from ff.core.keys import ExecKeys
from ff.script import scheduling as scheduling_fns
from ff.script.execution import set_execution_tags
from ff.script.lease import claim_execution
from ff.script.library import LIBRARY_VERSION
from ff.server import Server
from tests.engine.conftest import claim, core_field, submit

pytestmark = [pytest.mark.compat, pytest.mark.cluster]


async def test_library_is_reloaded_when_a_function_goes_missing(server: Server) -> None:
    await server.client.execute("FUNCTION", "FLUSH")
    eid = await submit(server)  # the first call finds no function, reloads and retries
    assert await server.get_execution_state(eid) == "waiting"
    assert await server.library.loaded_version() == LIBRARY_VERSION


async def test_boot_skips_loading_when_the_version_matches(server: Server) -> None:
    assert await server.library.ensure_loaded() is False
    assert await server.library.ensure_loaded(force=True) is True


async def test_explicit_claim_grant_rules(server: Server) -> None:
    eid = await submit(server)
    grant = {"worker_id": "w1", "worker_instance_id": "w1-i", "lane_id": "default",
             "grant_ttl_ms": 50, "worker_caps_csv": ""}
    await scheduling_fns.issue_claim_grant(server.library, eid, **grant)
    with pytest.raises(ConflictError, match="grant_already_exists"):
        await scheduling_fns.issue_claim_grant(server.library, eid, **grant)
    lease_args = {"worker_instance_id": "w1-i", "lease_ttl_ms": 1000,
                  "lease_id": "l1", "attempt_id": "a1"}
    with pytest.raises(ContentionError, match="invalid_claim_grant"):
        await claim_execution(server.library, eid, worker_id="intruder", **lease_args)
    await trio.sleep(0.07)  # the grant expires (and its key with it)
    with pytest.raises(ContentionError, match="invalid_claim_grant"):
        await claim_execution(server.library, eid, worker_id="w1", **lease_args)
    with pytest.raises(ValidationError, match="invalid_input"):
        await scheduling_fns.issue_claim_grant(server.library, eid, **{**grant, "grant_ttl_ms": 0})


async def test_progress_needs_the_current_lease(server: Server) -> None:
    eid = await submit(server)
    lease = await claim(server)
    await scheduling_fns.update_progress(server.library, eid, lease_id=lease.lease_id,
                                         lease_epoch=lease.lease_epoch, progress_pct=40,
                                         message="halfway")
    assert await core_field(server, eid, "progress_pct") == "40"
    assert await core_field(server, eid, "progress_message") == "halfway"
    with pytest.raises(ContentionError, match="stale_lease"):
        await scheduling_fns.update_progress(server.library, eid, lease_id="other",
                                             lease_epoch=lease.lease_epoch, progress_pct=50)
    with pytest.raises(ValidationError):
        await scheduling_fns.update_progress(server.library, eid, lease_id=lease.lease_id,
                                             lease_epoch=lease.lease_epoch, progress_pct=101)


async def test_tags_keys_are_validated_before_writing(server: Server) -> None:
    eid = await submit(server)
    await set_execution_tags(server.library, eid, {"billing.customer": "acme"})
    with pytest.raises(ValidationError, match="invalid_tag_key"):
        await set_execution_tags(server.library, eid, {"ok.key": "1", "BadKey": "2"})
    tags = await server.client.execute("HGETALL", ExecKeys(eid).tags)
    assert tags == {b"billing.customer": b"acme"}


async def test_a_worker_does_not_replace_another_library_version(server: Server) -> None:
    from ff.core.errors import BackendError

    other = ("#!lua name=flowfabric\n"
             "redis.register_function('ff_version', function() return '0' end)")
    await server.client.function_load(other, replace=True)
    with pytest.raises(BackendError, match="library_version_mismatch") as info:
        await server.library.ensure_loaded(replace=False)
    assert info.value.retryable is False
    assert await server.library.ensure_loaded() is True
