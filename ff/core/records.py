"""Records that cross a boundary (Server API, HTTP, worker SDK), as msgspec Structs.

Field names follow the reference wire format so HTTP bodies need no translation. Every
millisecond field is `Millis` (0 up to the year 9999), so a decoded record never carries a
time the function library cannot handle exactly.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ff.core.millis import Millis
from ff.core.policy import ExecutionPolicy
from ff.core.states import StateVector


class CreateResult(msgspec.Struct, frozen=True):
    execution_id: str
    public_state: str
    duplicate: bool = False


class ClaimGrant(msgspec.Struct, frozen=True):
    """Permission for one worker to take a lease; `kind` says which claim call to make."""

    execution_id: str
    partition_key: str
    grant_key: str
    expires_at_ms: Millis
    lane_id: str = ""
    kind: str = "claim"


class LeaseHandle(msgspec.Struct, frozen=True):
    """A lease as granted by claim / claim_resumed / reclaim, with what the task needs."""

    execution_id: str
    lease_id: str
    lease_epoch: str
    expires_at: Millis
    attempt_id: str
    attempt_index: int
    attempt_type: str
    execution_kind: str
    namespace: str
    payload_encoding: str
    payload: bytes
    lane_id: str
    created_at: Millis
    priority: int
    tags: dict[str, str]


class ExecutionInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """An execution as `GET /v1/executions/{id}` shows it: `flow_id` is always there
    (null outside a flow), `started_at` / `completed_at` only once set (the reference's
    wire shape)."""

    execution_id: str
    namespace: str
    lane_id: str
    priority: int
    execution_kind: str
    state_vector: StateVector
    public_state: str
    created_at: str
    current_attempt_index: int
    blocking_detail: str
    flow_id: str | None
    started_at: str | None = None
    completed_at: str | None = None


class ExecutionPage(msgspec.Struct, frozen=True):
    executions: list[str]
    next_cursor: str | None


class CancelResult(msgspec.Struct, frozen=True):
    execution_id: str
    public_state: str
    previous_phase: str


class RevokeResult(msgspec.Struct, frozen=True):
    status: str
    lease_id: str = ""
    lease_epoch: str = ""
    reason: str = ""


class CreateExecutionArgs(msgspec.Struct, kw_only=True):
    """A submission. Ids, partition and `now` are optional: the server mints the id
    (on the lane's partition) and uses its own clock. `input_payload` takes the
    reference's array of byte values, a JSON string (stored as UTF-8) or, in-process,
    bytes."""

    execution_kind: str
    namespace: str = "default"
    lane_id: str = "default"
    input_payload: list[int] | str | None = None
    priority: int = 0
    creator_identity: str = ""
    execution_id: str | None = None
    partition_id: int | None = None
    now: Millis | None = None
    payload_encoding: str | None = None
    idempotency_key: str | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    policy: ExecutionPolicy | None = None
    delay_until: Millis | None = None
    execution_deadline_at: Millis | None = None


class CancelExecutionArgs(msgspec.Struct, kw_only=True):
    execution_id: str | None = None
    reason: str = ""
    source: str = "operator_override"
    lease_id: str | None = None
    lease_epoch: int | str | None = None
    attempt_id: str | None = None
    now: Millis | None = None


class ReclaimGrantArgs(msgspec.Struct, kw_only=True):
    worker_id: str
    worker_instance_id: str
    lane_id: str
    grant_ttl_ms: Millis
    capability_hash: str | None = None
    route_snapshot_json: str | None = None
    admission_summary: str | None = None
    worker_capabilities: list[str] = msgspec.field(default_factory=list)


class ReclaimGrantResult(msgspec.Struct, frozen=True, tag_field="status", tag=str.lower):
    """Base of the three reclaim outcomes (internally tagged by `status`)."""


class ReclaimGranted(ReclaimGrantResult, frozen=True, tag="granted"):
    execution_id: str
    partition_key: str
    grant_key: str
    expires_at_ms: Millis
    lane_id: str


class ReclaimNotReclaimable(ReclaimGrantResult, frozen=True, tag="not_reclaimable"):
    execution_id: str
    detail: str


class ReclaimCapExceeded(ReclaimGrantResult, frozen=True, tag="reclaim_cap_exceeded"):
    execution_id: str
    reclaim_count: int


class StreamFrame(msgspec.Struct, frozen=True):
    """One entry of an attempt stream: its id (`<ms>-<seq>`) and its fields."""

    id: str
    fields: dict[str, str]


class StreamFrames(msgspec.Struct, frozen=True):
    """A page of frames and the stream's terminal markers (null while it is open)."""

    frames: list[StreamFrame]
    count: int
    closed_at: Millis | None = None
    closed_reason: str | None = None


class AppendResult(msgspec.Struct, frozen=True):
    """Where an appended frame landed; `summary_version` only for summary frames."""

    entry_id: str
    frame_count: int
    summary_version: int | None = None


class StreamSummary(msgspec.Struct, frozen=True):
    """An attempt's summary document (None until a summary frame is appended)."""

    document: dict[str, Any] | None
    version: int
    patch_kind: str | None = None
    last_updated_ms: Millis | None = None
    first_applied_ms: Millis | None = None
