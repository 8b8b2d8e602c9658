"""Which key of a command decides its cluster slot, and what a redirect reply says.

Pure functions, no I/O: the cluster client routes with them and tests check them alone.
Commands that carry no key (PING, INFO, FUNCTION, SCAN, TIME, ...) route to any primary.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ff.resp import errors
from ff.resp.slots import key_slot

# First argument after the name is not a key (or there is none).
_KEYLESS = frozenset({
    "PING", "ECHO", "INFO", "TIME", "FUNCTION", "SCRIPT", "SCAN", "DBSIZE", "FLUSHALL",
    "FLUSHDB", "CONFIG", "CLIENT", "CLUSTER", "COMMAND", "PUBLISH", "SPUBLISH", "LASTSAVE",
    "MEMORY", "LATENCY", "SLOWLOG", "ACL", "HELLO", "READONLY", "READWRITE", "ASKING",
    "WAIT", "WAITAOF", "RANDOMKEY", "DEBUG", "SAVE", "BGSAVE", "BGREWRITEAOF",
})
_NUMKEYS_AT_2 = frozenset({"FCALL", "FCALL_RO", "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"})


def _name(value: Any) -> str:
    return (value.decode() if isinstance(value, bytes) else str(value)).upper()


def command_name(args: tuple[Any, ...]) -> str:
    """The command's name in upper case."""
    return _name(args[0])


def command_slot(args: tuple[Any, ...]) -> int | None:
    """The slot a command must run on, or None when any node will do."""
    name = _name(args[0])
    if name in _NUMKEYS_AT_2:
        if len(args) > 3 and int(args[2]) > 0:
            return key_slot(_as_key(args[3]))
        return None
    if name in ("XREAD", "XREADGROUP"):
        for i, arg in enumerate(args):
            if _name(arg) == "STREAMS" and i + 1 < len(args):
                return key_slot(_as_key(args[i + 1]))
        return None
    if name in _KEYLESS or len(args) < 2:
        return None
    return key_slot(_as_key(args[1]))


def _as_key(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class Redirect(NamedTuple):
    """A MOVED (the slot has a new owner) or ASK (ask that node once) reply."""

    ask: bool
    slot: int
    address: str


def redirect_of(reply: errors.ResponseError) -> Redirect | None:
    """The redirect an error reply carries (`MOVED 3999 127.0.0.1:6381`), else None."""
    if reply.prefix not in ("MOVED", "ASK"):
        return None
    slot, _, address = reply.message.partition(" ")
    if not slot.isdigit() or ":" not in address:
        return None
    return Redirect(reply.prefix == "ASK", int(slot), address)
