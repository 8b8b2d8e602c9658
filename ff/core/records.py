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
    # Ours: the quota the execution was admitted under, so the worker releases its slot.
    quota_policy_id: str | None = None


class ResumeSignal(msgspec.Struct, frozen=True):
    """A signal that satisfied the suspension a resumed attempt comes back from
    (`task.resume_signals`). An `auto_resume` timeout shows as one signal named
    `__timeout__` with source_type `timeout`."""

    signal_id: str
    name: str
    source_type: str
    source_identity: str
    payload_encoding: str
    payload: bytes

    def json(self) -> object:
        """The payload decoded as JSON (None when empty)."""
        return msgspec.json.decode(self.payload) if self.payload else None


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
    resume_signals: list[ResumeSignal] = msgspec.field(default_factory=list)
    # Set by the scheduler (not the library): the quota whose slot this lease holds.
    quota_policy_id: str = ""


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


class SuspendOutcome(msgspec.Struct, frozen=True):
    """What `task.suspend` returns: the waitpoint (and its token, the bearer credential a
    signaller needs), the timeout deadline, and `state`: `suspended`, or `resumed` when
    signals buffered on a pending waitpoint already satisfied the condition (the next
    claim resumes at once). `additional_waitpoints` are (id, key, token) of the other
    waitpoints of a composite."""

    suspension_id: str
    waitpoint_id: str
    waitpoint_key: str
    waitpoint_token: str
    timeout_at: Millis | None
    state: str
    additional_waitpoints: list[tuple[str, str, str]] = msgspec.field(default_factory=list)


class PendingWaitpoint(msgspec.Struct, frozen=True):
    """A waitpoint minted before the suspend (`task.create_pending_waitpoint`)."""

    waitpoint_id: str
    waitpoint_key: str
    waitpoint_token: str
    expires_at: Millis


class PendingWaitpointInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """One open waitpoint as `GET .../pending-waitpoints` lists it: never the token, only
    its kid and the first 16 hex of its digest."""

    waitpoint_id: str
    waitpoint_key: str
    state: str
    required_signal_names: list[str]
    created_at: Millis
    execution_id: str
    token_kid: str
    token_fingerprint: str
    activated_at: Millis | None = None
    expires_at: Millis | None = None


class DeliverSignalArgs(msgspec.Struct, kw_only=True):
    """A signal. `execution_id`, `signal_id` and `now` are optional (the path names the
    execution, the server mints the id and uses its clock); `payload` takes the
    reference's array of byte values, a JSON string (stored as UTF-8) or, in-process,
    bytes."""

    waitpoint_id: str
    signal_name: str
    waitpoint_token: str
    execution_id: str | None = None
    signal_id: str | None = None
    signal_category: str = "default"
    source_type: str = "external"
    source_identity: str = ""
    target_scope: str = "waitpoint"
    payload: list[int] | str | None = None
    payload_encoding: str | None = None
    correlation_id: str | None = None
    idempotency_key: str | None = None
    created_at: Millis | None = None
    dedup_ttl_ms: Millis | None = None
    resume_delay_ms: Millis | None = None
    max_signals_per_execution: int | None = None
    signal_maxlen: int | None = None
    now: Millis | None = None


class DeliverSignalResult(msgspec.Struct, frozen=True):
    """`duplicate` False: accepted with `effect`; True: `signal_id` is the signal this
    idempotency key (or signal id) first delivered."""

    signal_id: str
    effect: str = ""
    duplicate: bool = False


class RotateSecretResult(msgspec.Struct, frozen=True):
    """Partitions rotated (or already on the kid), and the indexes of those that failed."""

    rotated: int
    failed: list[int]
    new_kid: str
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
