"""Partition math: which `{fp:N}` / `{b:M}` / `{q:K}` hash tag a record lives under.

The counts are fixed per deployment (stored in `ff:config:partitions` at first boot);
changing them would move every record, so a later boot with other counts is refused.
"""

from __future__ import annotations

import random
import uuid

import msgspec

from ff.crc16 import crc16_xmodem

FLOW_FAMILY = "fp"
BUDGET_FAMILY = "b"
QUOTA_FAMILY = "q"


def fnv1a_64(data: bytes) -> int:
    """FNV-1a 64: spreads workers over partitions (scheduler start offset)."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


class PartitionConfig(msgspec.Struct, frozen=True):
    num_flow_partitions: int = 256
    num_budget_partitions: int = 32
    num_quota_partitions: int = 32

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if not 0 < value <= 65535:
                raise ValueError(f"{name} must be in 1..65535, got {value}")

    def as_fields(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.__struct_fields__}

    def mismatch_with(self, stored: dict[str, str]) -> str | None:
        """The first field whose stored value differs from ours, as the boot error text."""
        for name, value in self.as_fields().items():
            if name in stored and stored[name] != value:
                return (
                    f"partition_mismatch: {name}: stored={stored[name]}, config={value}. "
                    "Partition counts are fixed at deployment time."
                )
        return None

    def flow_partition(self, flow_id: str) -> int:
        return crc16_xmodem(uuid.UUID(flow_id).bytes) % self.num_flow_partitions

    def lane_partition(self, lane_id: str) -> int:
        """The lane's home partition: where its work hints live, and where its solo
        executions start their spread."""
        return crc16_xmodem(lane_id.encode()) % self.num_flow_partitions

    def lane_partitions(self, lane_id: str, spread: int = 0) -> range:
        """The `spread` consecutive partitions from the lane's home (0 or more than the
        count: all) that ff places the lane's solo executions on, as offsets to wrap."""
        n = self.num_flow_partitions
        return range(self.lane_partition(lane_id), self.lane_partition(lane_id)
                     + (n if spread <= 0 or spread > n else spread))

    def solo_partition(self, lane_id: str, spread: int = 0, dedup: str | None = None) -> int:
        """A partition of the lane's spread for a new solo execution: random, or fixed by
        `dedup` (namespace and idempotency key), so that a repeat meets its first copy."""
        choices = self.lane_partitions(lane_id, spread)
        if dedup is None:
            chosen = random.choice(choices)
        else:
            chosen = choices[crc16_xmodem(dedup.encode()) % len(choices)]
        return chosen % self.num_flow_partitions

    def budget_partition(self, budget_id: str) -> int:
        return crc16_xmodem(uuid.UUID(budget_id).bytes) % self.num_budget_partitions

    def quota_partition(self, quota_policy_id: str) -> int:
        return crc16_xmodem(uuid.UUID(quota_policy_id).bytes) % self.num_quota_partitions


def flow_tag(index: int) -> str:
    return f"{{{FLOW_FAMILY}:{index}}}"


def budget_tag(index: int) -> str:
    return f"{{{BUDGET_FAMILY}:{index}}}"


def quota_tag(index: int) -> str:
    return f"{{{QUOTA_FAMILY}:{index}}}"
