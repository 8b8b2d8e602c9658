"""The slot map of a cluster, read from `CLUSTER SHARDS` (Valkey >= 7.0) or `CLUSTER SLOTS`.

`SlotMap` is an immutable snapshot: slot -> primary address ("host:port"). The cluster
client swaps in a new one after a refresh, so a router never sees a half-built map.
"""

from __future__ import annotations

from typing import Any

from ff.resp.slots import SLOTS


class SlotMap:
    """Owner of every slot (None: no primary serves it right now)."""

    __slots__ = ("owners", "primaries")

    def __init__(self, ranges: list[tuple[int, int, str]]) -> None:
        owners: list[str | None] = [None] * SLOTS
        for start, end, address in ranges:
            for slot in range(start, end + 1):
                owners[slot] = address
        self.owners = owners
        self.primaries = sorted({address for _, _, address in ranges})

    @property
    def complete(self) -> bool:
        return None not in self.owners


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(entry: Any, name: str) -> Any:
    """A field of a RESP3 map (dict) or RESP2 flat list reply."""
    if isinstance(entry, dict):
        for key, value in entry.items():
            if _text(key) == name:
                return value
        return None
    for i in range(0, len(entry) - 1, 2):
        if _text(entry[i]) == name:
            return entry[i + 1]
    return None


def ranges_from_shards(reply: list[Any], tls: bool) -> list[tuple[int, int, str]]:
    """(start, end, primary) for every slot range of a `CLUSTER SHARDS` reply."""
    ranges = []
    for shard in reply:
        primary = None
        for node in _field(shard, "nodes") or []:
            role, health = _text(_field(node, "role")), _text(_field(node, "health"))
            if role == "master" and health == "online":
                port = _field(node, "tls-port" if tls else "port") or _field(node, "port")
                host = _text(_field(node, "ip") or _field(node, "endpoint"))
                primary = f"{host}:{int(port)}"
        bounds = _field(shard, "slots") or []
        if primary is None:
            continue
        for i in range(0, len(bounds) - 1, 2):
            ranges.append((int(bounds[i]), int(bounds[i + 1]), primary))
    return ranges


def ranges_from_slots(reply: list[Any]) -> list[tuple[int, int, str]]:
    """(start, end, primary) from a `CLUSTER SLOTS` reply (Redis 7.0 without SHARDS)."""
    return [
        (int(entry[0]), int(entry[1]), f"{_text(entry[2][0])}:{int(entry[2][1])}")
        for entry in reply
    ]
