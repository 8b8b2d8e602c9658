"""Explicit pipelines: several commands in one round trip, optionally as MULTI/EXEC.

Results come back in command order with `ResponseError` instances in place of the
commands that failed, so one bad command never hides the others' outcomes. In a
transaction a command the server refuses while queueing (wrong arity, unknown command)
aborts the whole EXEC: its own error is returned in its place and the EXECABORT error in
every other place. There is no WATCH: on shared connections use a function (FCALL) for
check-and-set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ff.resp import errors
from ff.resp._commands import encode, encode_shared
from ff.resp._pool import Requester

_MULTI = encode(("MULTI",))
_EXEC = encode(("EXEC",))


class Pipeline:
    """Collects commands; `run()` sends them together. Reusable: `run()` empties it."""

    def __init__(self, requester: Requester, *, transaction: bool = False) -> None:
        self._requester = requester
        self._transaction = transaction
        self._frames: list[bytes] = []

    def __len__(self) -> int:
        return len(self._frames)

    def execute_command(self, *args: str | bytes | int | float) -> Pipeline:
        """Queue one command (encoded now, so a bad argument fails here, not in `run`)."""
        self._frames.append(encode_shared(args))
        return self

    def fcall(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Pipeline:
        """Queue `FCALL name numkeys *keys *args`."""
        return self.execute_command("FCALL", name, len(keys), *keys, *args)

    async def run(self, raise_on_error: bool = False, *, timeout: float | None = None) -> list[Any]:
        """Send everything queued in one write and return the replies in order.

        With `raise_on_error`, the first error reply is raised instead of returned.
        """
        frames, self._frames = self._frames, []
        if not frames:
            return []
        if self._transaction:
            replies = await self._requester.request(
                b"".join([_MULTI, *frames, _EXEC]), len(frames) + 2, timeout
            )
            results = transaction_results(replies)
        elif len(frames) == 1:
            results = [await self._requester.request(frames[0], 1, timeout)]
        else:
            results = await self._requester.request(b"".join(frames), len(frames), timeout)
        if raise_on_error:
            for result in results:
                if isinstance(result, errors.ResponseError):
                    raise result
        return results


def transaction_results(replies: list[Any]) -> list[Any]:
    """EXEC's result list, or per-command errors when EXEC was aborted."""
    queued, outcome = replies[1:-1], replies[-1]
    if isinstance(outcome, errors.ResponseError):
        return [q if isinstance(q, errors.ResponseError) else outcome for q in queued]
    return outcome
