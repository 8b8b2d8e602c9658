"""Loads the `flowfabric` Lua library into Valkey and calls its functions.

Every FCALL goes through `FunctionLibrary.call`, which turns the `{1, status, ...}` /
`{0, code, ...}` envelope into a `Reply` or a typed `FFError`, and reloads the library
once when the server says a function is missing (failover, FLUSHALL, a fresh replica).
Every call also declares its tag's migration fence (`ff.core.keys.migration_fence`).
`Reply.into(Struct)` decodes the positional fields after the status into a Struct whose
field order is the order the function's header lists: the only place replies are read.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, TypeVar, get_type_hints

import msgspec
import trio

from ff.core.errors import BackendError, FFError, error_for_code
from ff.core.keys import migration_fence
from ff.core.records import ResumeSignal
from ff.resp import errors as resp_errors
from ff.script._source import LIBRARY_NAME, assemble, load_areas

log = logging.getLogger("ff.script")

DIGEST_PLACEHOLDER = "@DIGEST@"

_AREAS = load_areas()
_SOURCE = assemble(_AREAS)


def _read_release() -> str:
    match = re.search(r"LIBRARY_RELEASE = '([^']+)'", _SOURCE)
    assert match, "lua/version.lua must define LIBRARY_RELEASE"
    return match.group(1)


# `<release>.<digest of the sources>`: any edit to lua/ (or to the facts generated from
# ff.core) changes the version, so a server whose persisted library is older is
# reloaded at boot even if nobody bumped the release.
LIBRARY_VERSION = f"{_read_release()}.{hashlib.sha256(_SOURCE.encode()).hexdigest()[:12]}"


@cache
def library_source() -> str:
    return _SOURCE.replace(DIGEST_PLACEHOLDER, LIBRARY_VERSION)


def text(value: object) -> str:
    """A reply element as text (bulk strings arrive as bytes)."""
    if isinstance(value, bytes):
        return value.decode()
    return "" if value is None else str(value)


def _as_bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else text(value).encode()


def _as_int(value: object) -> int:
    return int(text(value))


def _as_optional_int(value: object) -> int | None:
    raw = text(value)
    return int(raw) if raw else None


def _as_optional_text(value: object) -> str | None:
    return text(value) or None


def _as_pairs(value: object) -> dict[str, str]:
    flat = value if isinstance(value, list) else []
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def _as_texts(value: object) -> list[str]:
    return [text(v) for v in value] if isinstance(value, list) else []


def _as_triples(value: object) -> list[tuple[str, str, str]]:
    flat = _as_texts(value)
    return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat) - 2, 3)]


def _as_resume_signals(value: object) -> list[ResumeSignal]:
    flat = value if isinstance(value, list) else []
    return [ResumeSignal(text(flat[i]), text(flat[i + 1]), text(flat[i + 2]),
                         text(flat[i + 3]), text(flat[i + 4]), _as_bytes(flat[i + 5]))
            for i in range(0, len(flat) - 5, 6)]
def _as_list(value: object) -> list[object]:
    """A nested array left for the wrapper to decode element by element."""
    return value if isinstance(value, list) else []


_CONVERTERS: dict[Any, Callable[[object], Any]] = {
    str: text, int: _as_int, bytes: _as_bytes, int | None: _as_optional_int,
    str | None: _as_optional_text, dict[str, str]: _as_pairs, list[str]: _as_texts,
    list[tuple[str, str, str]]: _as_triples, list[ResumeSignal]: _as_resume_signals,
    list[object]: _as_list,
}

S = TypeVar("S", bound=msgspec.Struct)


@cache
def _plan(struct: type[msgspec.Struct]) -> tuple[tuple[Callable[[object], Any], ...], int]:
    """Per field, the converter of its type; and how many fields are required."""
    hints = get_type_hints(struct)
    plan = []
    for name in struct.__struct_fields__:
        converter = _CONVERTERS.get(hints[name])
        if converter is None:
            raise TypeError(f"{struct.__name__}.{name}: no reply converter for {hints[name]}")
        plan.append(converter)
    required = len(struct.__struct_fields__) - len(struct.__struct_defaults__)
    return tuple(plan), required


class Reply:
    """A successful envelope: `status` plus the positional payload elements."""

    __slots__ = ("status", "values")

    def __init__(self, status: str, values: list[object]) -> None:
        self.status = status
        self.values = values

    def into(self, struct: type[S]) -> S:
        """The payload as `struct`, field by field in order; trailing fields the reply
        leaves out take their defaults."""
        plan, required = _plan(struct)
        values = self.values
        if len(values) < required:
            raise invalid_reply(f"{struct.__name__}: {len(values)} fields, {required} "
                                f"required: {values!r:.200}")
        return struct(*(convert(v) for convert, v in zip(plan, values, strict=False)))

    def first(self) -> str:
        """The single text field of replies that carry one (an outcome, a count)."""
        return text(self.values[0]) if self.values else ""


def invalid_reply(detail: str) -> BackendError:
    """A reply this ff cannot read: a library of another version, or a bug; never
    transient."""
    error = BackendError("invalid_reply", detail)
    error.retryable = False
    return error


def parse_envelope(reply: object) -> Reply:
    if not isinstance(reply, list) or len(reply) < 2:
        raise invalid_reply(f"unexpected function reply: {reply!r:.200}")
    if reply[0] == 1:
        return Reply(text(reply[1]), reply[2:])
    raise error_for_code(text(reply[1]), *(text(v) for v in reply[2:]))


def _script_error(exc: resp_errors.ResponseError) -> BackendError:
    """A server error reply to an FCALL as a BackendError; a transient one (OOM under
    `noeviction`, LOADING, BUSY) is retryable and answers HTTP 503, not 500."""
    error = BackendError("script_error", str(exc))
    error.retryable = exc.retryable
    if exc.retryable:
        error.status = 503
    return error
def _fenced(keys: Sequence[str]) -> list[str]:
    return [*keys, migration_fence(keys[0])] if keys else list(keys)


def _version_of(reply: object) -> str:
    if isinstance(reply, resp_errors.ResponseError):
        raise reply
    return text(reply)


def _is_missing_function(exc: resp_errors.ResponseError) -> bool:
    return "function not found" in str(exc).lower()


class FunctionLibrary:
    """Calls into the library on one client, keeping it loaded."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._reload_lock = trio.Lock()

    async def _versions(self) -> set[str | None]:
        """The library version of each primary (None: no library there). One server is
        one primary; a cluster has several, each needing its own copy."""
        replies = await self.client.on_every_primary("FCALL", "ff_version", 0)
        return {None if isinstance(r, resp_errors.ResponseError) and _is_missing_function(r)
                else _version_of(r) for r in replies.values()}

    async def loaded_version(self) -> str | None:
        """The version every primary runs; None if one has none, "mixed" if they differ."""
        versions = await self._versions()
        if None in versions:
            return None
        return versions.pop() if len(versions) == 1 else "mixed"

    async def ensure_loaded(self, *, force: bool = False, replace: bool = True) -> bool:
        """Load the library on every primary unless all run this version. True if loaded.

        `replace=False` (workers) loads only where no library is present and refuses a
        different version: a worker of another release must not swap the server's library.
        """
        async with self._reload_lock:
            versions = await self._versions()
            if not force and versions == {LIBRARY_VERSION}:
                return False
            other = versions - {None, LIBRARY_VERSION}
            if not replace and other:
                error = BackendError(
                    "library_version_mismatch",
                    f"the server runs library {sorted(str(v) for v in other)[0]!r}, "
                    f"this ff needs {LIBRARY_VERSION!r}",
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
        fenced = _fenced(keys)
        try:
            raw = await self.client.fcall(name, fenced, args)
        except resp_errors.ResponseError as exc:
            if not _is_missing_function(exc):
                raise _script_error(exc) from exc
            log.warning("function %s missing on the server: reloading the library", name)
            await self.ensure_loaded()
            raw = await self.client.fcall(name, fenced, args)
        return parse_envelope(raw)

    async def call_after_reads(self, reads: Sequence[Sequence[object]], name: str,
                               keys: Sequence[str], args: Sequence[object]
                               ) -> tuple[list[object], Reply]:
        """Plain read commands, then one function call, in one round trip: the reads'
        replies (errors raise) and the call's `Reply`. Keys may live on other tags (the
        reads are not part of the call's atomic step)."""
        pipe = self.client.pipeline()
        for command in reads:
            pipe.execute_command(*command)
        pipe.fcall(name, _fenced(keys), args)
        replies = await pipe.run()
        for raw in replies[:-1]:
            if isinstance(raw, resp_errors.ResponseError):
                raise raw
        raw = replies[-1]
        if isinstance(raw, resp_errors.ResponseError):
            if not _is_missing_function(raw):
                error = BackendError("script_error", str(raw))
                error.retryable = raw.retryable
                raise error from raw
            return list(replies[:-1]), await self.call(name, keys, args)
        return list(replies[:-1]), parse_envelope(raw)

    async def call_many(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[object]]]
                        ) -> list[Reply | FFError]:
        """`name` once per (keys, args), pipelined in one round trip and run in order.

        Each answer is a `Reply` or the `FFError` of that call; transport failures raise.
        Calls that found the library missing are repeated one by one after a reload.
        """
        pipe = self.client.pipeline()
        for keys, args in calls:
            pipe.fcall(name, _fenced(keys), args)
        replies = await pipe.run()
        answers: list[Reply | FFError] = []
        for (keys, args), raw in zip(calls, replies, strict=True):
            try:
                if isinstance(raw, resp_errors.ResponseError):
                    if not _is_missing_function(raw):
                        raise raw
                    answers.append(await self.call(name, keys, args))
                else:
                    answers.append(parse_envelope(raw))
            except FFError as exc:
                answers.append(exc)
            except resp_errors.ResponseError as exc:
                answers.append(_script_error(exc))
        return answers


__all__ = ["LIBRARY_NAME", "LIBRARY_VERSION", "FunctionLibrary", "Reply", "library_source",
           "text"]
