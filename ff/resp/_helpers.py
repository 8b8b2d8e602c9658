"""Higher-level commands (functions, SCAN iteration) defined purely on `execute`.

Kept apart from the single-node client so a cluster client with the same public
methods can inherit them and only supply its own routing `execute`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any


def scan_options(match: str | None, count: int, type: str | None) -> list[Any]:
    """The COUNT / MATCH / TYPE arguments of a SCAN."""
    options: list[Any] = ["COUNT", count]
    if match is not None:
        options += ["MATCH", match]
    if type is not None:
        options += ["TYPE", type]
    return options

class CommandHelpers:
    """Mixin: needs `execute(*args, timeout=None)` from the class it is mixed into."""

    execute: Callable[..., Awaitable[Any]]

    async def fcall(
        self, name: str, keys: Sequence[Any], args: Sequence[Any], *, timeout: float | None = None
    ) -> Any:
        """`FCALL name numkeys *keys *args`: run a server-side function."""
        return await self.execute("FCALL", name, len(keys), *keys, *args, timeout=timeout)

    async def fcall_ro(
        self, name: str, keys: Sequence[Any], args: Sequence[Any], *, timeout: float | None = None
    ) -> Any:
        """`FCALL_RO`: a read-only function (allowed on replicas and under `no-writes`)."""
        return await self.execute("FCALL_RO", name, len(keys), *keys, *args, timeout=timeout)

    async def function_load(self, code: str, replace: bool = True) -> str:
        """`FUNCTION LOAD [REPLACE] code`; returns the library name."""
        args = ("FUNCTION", "LOAD", "REPLACE", code) if replace else ("FUNCTION", "LOAD", code)
        name = await self.execute(*args)
        return name.decode()

    async def scan_iter(
        self, match: str | None = None, count: int = 1000, type: str | None = None
    ) -> AsyncIterator[bytes]:
        """Every key (bytes) via SCAN. Like SCAN itself, a key may be yielded twice."""
        options = scan_options(match, count, type)
        cursor: bytes = b"0"
        while True:
            cursor, keys = await self.execute("SCAN", cursor, *options)
            for key in keys:
                yield key
            if cursor == b"0":
                return

    async def sscan_iter(
        self, key: str | bytes, match: str | None = None, count: int = 1000
    ) -> AsyncIterator[bytes]:
        """Every member of set `key` via SSCAN (a member may be yielded twice)."""
        options: list[Any] = ["COUNT", count]
        if match is not None:
            options += ["MATCH", match]
        cursor: bytes = b"0"
        while True:
            cursor, members = await self.execute("SSCAN", key, cursor, *options)
            for member in members:
                yield member
            if cursor == b"0":
                return
