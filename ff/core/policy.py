"""The execution policy: retry, timeouts, routing, streams. Stored verbatim as JSON.

Decoding through these Structs is the validation: unknown fields, wrong types and
millisecond values outside `ff.core.millis` are rejected with `invalid_policy_json` before
anything is written. The library reads the stored JSON itself (retry decision, reclaim cap,
attempt timeout), applying the same defaults to absent fields.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from ff.core.errors import ValidationError
from ff.core.ids import parse_uuid
from ff.core.limits import (
    BUDGET_IDS_PER_EXECUTION_MAX,
    CAPS_MAX_BYTES,
    CAPS_MAX_TOKENS,
    POLICY_COUNT_MAX,
    STREAM_RETENTION_MAXLEN_MAX,
)
from ff.core.millis import Millis

BudgetIds = Annotated[list[str], msgspec.Meta(max_length=BUDGET_IDS_PER_EXECUTION_MAX)]

# Retries, reclaims, replays, signals: whole numbers from 0 to POLICY_COUNT_MAX.
Count = Annotated[int, msgspec.Meta(ge=0, le=POLICY_COUNT_MAX)]


class _Policy(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    pass


class FixedBackoff(_Policy, tag="fixed", tag_field="type"):
    delay_ms: Millis = 1000


class ExponentialBackoff(_Policy, tag="exponential", tag_field="type"):
    initial_delay_ms: Millis = 1000
    max_delay_ms: Millis = 60000
    multiplier: Annotated[float, msgspec.Meta(ge=1.0, le=1000.0)] = 2.0
    jitter: bool = False


Backoff = FixedBackoff | ExponentialBackoff


class RetryPolicy(_Policy):
    max_retries: Count = 3
    backoff: Backoff = msgspec.field(default_factory=ExponentialBackoff)
    retryable_categories: list[str] | None = None


class TimeoutPolicy(_Policy):
    attempt_timeout_ms: Millis | None = None
    execution_deadline_ms: Millis | None = None
    max_reclaim_count: Count | None = None


class SuspensionPolicy(_Policy):
    default_timeout_ms: Millis | None = None
    timeout_behavior: str = "fail"


class RoutingRequirements(_Policy):
    required_capabilities: list[str] = msgspec.field(default_factory=list)
    preferred_locality: str | None = None
    isolation_level: str | None = None


class StreamPolicy(_Policy):
    durability_mode: str = "buffered"
    retention_maxlen: Annotated[int, msgspec.Meta(ge=1, le=STREAM_RETENTION_MAXLEN_MAX)] = 10000
    retention_ttl_ms: Millis | None = None


class ExecutionPolicy(_Policy):
    priority: int | None = None
    delay_until: Millis | None = None
    retry_policy: RetryPolicy | None = None
    timeout_policy: TimeoutPolicy | None = None
    max_reclaim_count: Count | None = None
    suspension_policy: SuspensionPolicy | None = None
    max_replay_count: Count | None = None
    budget_ids: BudgetIds | None = None
    quota_policy_id: str | None = None
    routing_requirements: RoutingRequirements | None = None
    dedup_window_ms: Millis | None = None
    stream_policy: StreamPolicy | None = None
    max_signals_per_execution: Count | None = None

    def required_capabilities(self) -> list[str]:
        routing = self.routing_requirements
        return list(routing.required_capabilities) if routing else []

    def admission_ids(self) -> tuple[list[str], str | None]:
        """The attached budget ids (normalised, duplicates dropped) and quota policy id."""
        budgets = list(dict.fromkeys(parse_uuid(b, "budget_ids[]") for b in self.budget_ids or ()))
        quota = self.quota_policy_id
        return budgets, parse_uuid(quota, "quota_policy_id") if quota else None


_decoder = msgspec.json.Decoder(ExecutionPolicy)
_encoder = msgspec.json.Encoder()


def decode_policy(raw: bytes | str | dict | None) -> ExecutionPolicy | None:
    """Validate a policy given as JSON text or an already-decoded object."""
    if raw is None or raw in ("", b"", {}):
        return None
    try:
        if isinstance(raw, dict):
            return msgspec.convert(raw, ExecutionPolicy)
        return _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationError("invalid_policy_json", str(exc)) from None


def encode_policy(policy: ExecutionPolicy | None) -> str:
    return _encoder.encode(policy).decode() if policy is not None else ""


def capabilities_csv(tokens: list[str] | set[str] | tuple[str, ...], side: str) -> str:
    """Sorted, comma-joined capability tokens, validated as the library validates them.

    `side` is "required" or "worker" and prefixes the error detail.
    """
    unique = sorted(set(tokens))
    for token in unique:
        if not isinstance(token, str):
            raise ValidationError("invalid_capabilities", f"{side}:non_string_token")
        if not token:
            raise ValidationError("invalid_capabilities", f"{side}:empty_token")
        if "," in token:
            raise ValidationError("invalid_capabilities", f"{side}:comma_in_token")
        if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in token):
            raise ValidationError("invalid_capabilities", f"{side}:control_or_whitespace")
    if len(unique) > CAPS_MAX_TOKENS:
        raise ValidationError("invalid_capabilities", f"{side}:too_many_tokens")
    csv = ",".join(unique)
    if len(csv.encode()) > CAPS_MAX_BYTES:
        raise ValidationError("invalid_capabilities", f"{side}:too_many_bytes")
    return csv
