"""Loads the `flowfabric` Lua library into Valkey and calls its functions.

Every FCALL goes through `FunctionLibrary.call`, which turns the `{1, status, ...}` /
`{0, code, ...}` envelope into a `Reply` or a typed `FFError`, and reloads the library
once when the server says a function is missing (failover, FLUSHALL, a fresh replica).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import trio

from ff.core.errors import BackendError, error_for_code
from ff.resp import errors as resp_errors

log = logging.getLogger("ff.script")

LIBRARY_NAME = "flowfabric"
LUA_DIR = Path(__file__).resolve().parents[2] / "lua"
# Order matters: util defines the helpers the others use (one chunk, shared locals).
LUA_FILES = ("version.lua", "util.lua", "lease.lua", "execution.lua", "scheduling.lua")


DIGEST_PLACEHOLDER = "@DIGEST@"


def _read_release() -> str:
    match = re.search(r"LIBRARY_RELEASE = '([^']+)'", (LUA_DIR / "version.lua").read_text())
    assert match, "lua/version.lua must define LIBRARY_RELEASE"
    return match.group(1)


def _sources() -> str:
    parts = [f"#!lua name={LIBRARY_NAME}\n"]
    for name in LUA_FILES:
        parts.append(f"-- ==== {name} ====\n")
        parts.append((LUA_DIR / name).read_text())
    return "\n".join(parts)


# `<release>.<digest of the sources>`: any edit to lua/ changes the version, so a server
# whose persisted library is older is reloaded at boot even if nobody bumped the release.
LIBRARY_VERSION = f"{_read_release()}.{hashlib.sha256(_sources().encode()).hexdigest()[:12]}"


@cache
def library_source() -> str:
    return _sources().replace(DIGEST_PLACEHOLDER, LIBRARY_VERSION)


def text(value: object) -> str:
    """A reply element as text (bulk strings arrive as bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


class Reply:
    """A successful envelope: `status` plus the raw payload elements."""

    __slots__ = ("status", "values")

    def __init__(self, status: str, values: list[object]) -> None:
        self.status = status
        self.values = values

    def str(self, index: int) -> str:
        return text(self.values[index]) if index < len(self.values) else ""

    def int(self, index: int) -> int:
        value = self.str(index)
        return int(value) if value else 0


def parse_envelope(reply: object) -> Reply:
    if not isinstance(reply, list) or len(reply) < 2:
        raise BackendError("invalid_reply", f"unexpected function reply: {reply!r:.200}")
    if reply[0] == 1:
        return Reply(text(reply[1]), reply[2:])
    raise error_for_code(text(reply[1]), *(text(v) for v in reply[2:]))


def _is_missing_function(exc: resp_errors.ResponseError) -> bool:
    return "function not found" in str(exc).lower()


class FunctionLibrary:
    """Calls into the library on one client, keeping it loaded."""

    def __init__(self, client) -> None:
        self.client = client
        self._reload_lock = trio.Lock()

    async def loaded_version(self) -> str | None:
        try:
            return text(await self.client.fcall("ff_version", (), ()))
        except resp_errors.ResponseError as exc:
            if _is_missing_function(exc):
                return None
            raise

    async def ensure_loaded(self, *, force: bool = False, replace: bool = True) -> bool:
        """Load the library unless the server already has this version. True if loaded.

        `replace=False` (workers) loads only where no library is present and refuses a
        different version: a worker of another release must not swap the server's library.
        """
        async with self._reload_lock:
            loaded = await self.loaded_version()
            if not force and loaded == LIBRARY_VERSION:
                return False
            if not replace and loaded is not None:
                error = BackendError(
                    "library_version_mismatch",
                    f"the server runs library {loaded!r}, this ff needs {LIBRARY_VERSION!r}",
                )
                error.retryable = False
                raise error
            await self.client.function_load(library_source(), replace=True)
            loaded = await self.loaded_version()
            if loaded != LIBRARY_VERSION:
                raise BackendError(
                    "library_version_mismatch",
                    f"loaded {loaded!r}, expected {LIBRARY_VERSION!r}",
                )
            log.info("function library loaded", extra={"version": LIBRARY_VERSION})
            return True

    async def call(self, name: str, keys: Sequence[str], args: Sequence[object]) -> Reply:
        try:
            raw = await self.client.fcall(name, keys, args)
        except resp_errors.ResponseError as exc:
            if not _is_missing_function(exc):
                error = BackendError("script_error", str(exc))
                error.retryable = exc.retryable
                raise error from exc
            log.warning("function %s missing on the server: reloading the library", name)
            await self.ensure_loaded()
            raw = await self.client.fcall(name, keys, args)
        return parse_envelope(raw)
