"""Boot brings data kept by an older release up to date: the id index kept as a SET and
lanes whose terminal executions have no outcome counters."""

from __future__ import annotations

import pytest

from ff.core.ids import ExecutionId
from ff.core.keys import IndexKeys
from ff.script import execution as fns
from ff.script.library import text
from ff.server import Server
from tests.engine.conftest import claim, engine_config, fence, submit

pytestmark = pytest.mark.compat


async def test_boot_upgrades_an_older_releases_indexes(server_url: str) -> None:
    async with Server.running(engine_config(server_url)) as server:
        ids = [await submit(server) for _ in range(3)]
        for _ in range(2):
            lease = await claim(server)
            assert lease is not None
            await fns.complete_execution(server.library, lease.execution_id, **fence(lease))
        partition = ExecutionId.parse(ids[0]).partition
        idx = IndexKeys(partition)
        # What a release-2 library left: a SET of ids, no terminal counters.
        await server.client.execute("DEL", idx.all_executions, idx.lane("default",
                                                                         "terminal_counts"))
        await server.client.execute("SADD", idx.all_executions, *ids)

    async with Server.running(engine_config(server_url)) as server:
        assert text(await server.client.execute("TYPE", idx.all_executions)) == "zset"
        page = await server.list_executions(partition)
        assert page.executions == sorted(ids)
        counts = await server.count_executions("default")
        assert (counts["completed"], counts["waiting"]) == (2, 1)
