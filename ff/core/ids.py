"""Identifier formats and their validation.

ExecutionId is `{fp:N}:<uuid>`: the partition is baked in at mint time and parsed back,
never re-hashed. Other ids are bare UUIDs. Parsers raise `ValidationError` with a code.
"""

from __future__ import annotations

import os
import re
import uuid

from ff.core.errors import ValidationError
from ff.core.partitions import PartitionConfig, flow_tag

_EXECUTION_ID = re.compile(r"^\{fp:(\d{1,5})\}:([0-9a-fA-F-]{36})$")
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
LANE_MAX_BYTES = 64
WORKER_ID_MAX_BYTES = 256


class ExecutionId(str):
    """An execution id string that is known to parse; `.partition` and `.tag` come free."""

    __slots__ = ()

    @classmethod
    def parse(cls, value: object) -> ExecutionId:
        if isinstance(value, ExecutionId):
            return value
        if not isinstance(value, str):
            raise ValidationError("invalid_execution_id", "execution id must be a string")
        match = _EXECUTION_ID.match(value)
        if not match or int(match.group(1)) > 65535:
            raise ValidationError(
                "invalid_execution_id", f"expected '{{fp:N}}:<uuid>', got {value[:80]!r}"
            )
        try:
            uuid.UUID(match.group(2))
        except ValueError:
            raise ValidationError(
                "invalid_execution_id", f"not a UUID: {match.group(2)!r}"
            ) from None
        return cls(value)

    @classmethod
    def mint(cls, partition: int) -> ExecutionId:
        return cls(f"{flow_tag(partition)}:{uuid.uuid4()}")

    @classmethod
    def solo(cls, lane_id: str, config: PartitionConfig, spread: int = 0,
             dedup: str | None = None) -> ExecutionId:
        """A new solo execution's id on a partition of the lane's spread (random, or
        fixed by `dedup`: see `PartitionConfig.solo_partition`)."""
        return cls.mint(config.solo_partition(lane_id, spread, dedup))

    @classmethod
    def for_flow(cls, flow_id: str, config: PartitionConfig) -> ExecutionId:
        return cls.mint(config.flow_partition(flow_id))

    @property
    def partition(self) -> int:  # type: ignore[override]  # str.partition is not used on ids
        return int(self[4 : self.index("}")])

    @property
    def tag(self) -> str:
        return self[: self.index("}") + 1]


def parse_uuid(value: object, what: str = "id") -> str:
    """A bare UUID id (flow, budget, lease, attempt, ...), normalised to lowercase text."""
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise ValidationError("invalid_input", f"{what} must be a UUID, got {str(value)[:80]!r}")


def new_uuid() -> str:
    """A random (version 4) UUID as text, formatted straight from the random bytes: a
    worker mints two per lease, and building `uuid.UUID` objects cost ~3x as much."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def validate_lane(lane_id: object) -> str:
    """Lane ids are 1-64 bytes of printable ASCII: they appear inside index key names."""
    if (
        not isinstance(lane_id, str)
        or not 0 < len(lane_id) <= LANE_MAX_BYTES
        or not all(0x20 <= ord(ch) <= 0x7E for ch in lane_id)
    ):
        raise ValidationError(
            "invalid_lane_id", "lane id must be 1-64 printable ASCII characters"
        )
    return lane_id


def validate_worker_id(value: object, what: str = "worker_id") -> str:
    """Worker ids appear in key names and grants: non-empty, bounded, no whitespace/control."""
    if (
        not isinstance(value, str)
        or not value
        or len(value.encode()) > WORKER_ID_MAX_BYTES
        or _WHITESPACE_OR_CONTROL.search(value)
    ):
        raise ValidationError(
            "invalid_input", f"{what} must be 1-256 bytes without whitespace or control characters"
        )
    return value
