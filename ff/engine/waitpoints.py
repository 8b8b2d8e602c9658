"""The waitpoint scanners.

| scanner            | reads                                        | calls                 |
|--------------------|----------------------------------------------|-----------------------|
| suspension_timeout | ff:idx:{fp:N}:suspension_timeout (eids)      | ff_expire_suspension  |
| pending_wp_expiry  | ff:idx:{fp:N}:pending_waitpoint_expiry (ids) | ff_close_waitpoint    |

Both re-check inside the call (a resumed or already closed item is only dropped from the
index), so several server replicas may run them at once.
"""

from __future__ import annotations

from ff.core.keys import IndexKeys
from ff.core.partitions import flow_tag
from ff.engine.scanners import _DueScanner
from ff.script import waitpoint as waitpoint_fns


class SuspensionTimeoutScanner(_DueScanner):
    """Applies the timeout behaviour (fail, cancel, expire, auto_resume, escalate) of
    suspensions whose deadline has passed."""

    name = "suspension_timeout"

    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        return [(IndexKeys(partition).suspension_timeout, "")]

    async def handle(self, eid: str, lane: str) -> None:
        await waitpoint_fns.expire_suspension(self.library, eid)


class PendingWaitpointExpiryScanner(_DueScanner):
    """Closes pending waitpoints nobody suspended on in time (`never_committed`). The
    index holds waitpoint ids; the second element of each target is the partition tag."""

    name = "pending_wp_expiry"
    batch = 100

    def keys_for(self, partition: int, lanes: list[str]) -> list[tuple[str, str]]:
        return [(IndexKeys(partition).pending_waitpoint_expiry, flow_tag(partition))]

    async def handle(self, eid: str, lane: str) -> None:
        await waitpoint_fns.close_waitpoint(self.library, lane, eid, reason="never_committed",
                                            only_if_due=True)
