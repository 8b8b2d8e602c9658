"""Turning call arguments into wire frames for *shared* connections.

Arguments are encoded by hiredis' C encoder: str as UTF-8, bytes as-is, int as decimal
(`7` -> `b"7"`), float as its shortest repr (`0.1` -> `b"0.1"`, `1e20` -> `b"1e+20"`);
bool and None are rejected with TypeError rather than guessed at.

Commands that change connection state (MULTI, WATCH, SELECT, SUBSCRIBE, ...) or block
the connection (BLPOP, ...) would corrupt or stall every other caller multiplexed on
the same socket, so they are refused here and belong on `client.dedicated()`. Only the
command name is checked: `XREAD`/`XREADGROUP ... BLOCK`, `WAIT` and `WAITAOF` block
too and belong there as well, but are not detected.
"""

from __future__ import annotations

from typing import Any

import hiredis

_pack = hiredis.pack_command

_UNSHAREABLE_NAMES = (
    "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "SWAPDB", "HELLO", "AUTH",
    "RESET", "QUIT", "MONITOR", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE",
    "PUNSUBSCRIBE", "SUNSUBSCRIBE", "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP",
    "BZPOPMIN", "BZPOPMAX", "BZMPOP",
)
# Exact spellings (upper and lower case, str and bytes): a set lookup is all the hot
# path can afford, and these cover how commands are written in practice.
_UNSHAREABLE = frozenset(
    form
    for name in _UNSHAREABLE_NAMES
    for form in (name, name.lower(), name.encode(), name.lower().encode())
)


def encode(args: tuple[Any, ...]) -> bytes:
    """Frame for one command. Raises ValueError (no arguments) or TypeError (bad type)."""
    if not args:  # the server silently ignores an empty frame: no reply would ever come
        raise ValueError("a command needs at least a name")
    return _pack(args)


def encode_shared(args: tuple[Any, ...]) -> bytes:
    """Frame for one command sent on a shared connection; refuses unshareable commands."""
    if args and args[0] in _UNSHAREABLE:
        raise ValueError(
            f"{args[0]!r} cannot run on a shared connection: use `client.dedicated()` "
            "(or `client.pipeline(transaction=True)` for MULTI/EXEC)"
        )
    return encode(args)
