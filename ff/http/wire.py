"""The JSON shapes of the REST API that are not records of the Server API.

What lives here: request bodies that only exist on the wire (priority, worker claim), and the
reference's externally tagged results (`{"Created": {...}}`, `{"Duplicate": {...}}`, ...).
Each tagged result is one Struct with one optional field per variant and `omit_defaults`, so
encoding an instance with exactly one variant set gives the reference's one-key object, and
the client decodes the same Struct and looks at which field is set.

Shared by the route handlers (`ff/http/routes/`) and the typed client (`ff/client.py`).
Records that already have the wire shape (`ExecutionInfo`, `ExecutionPage`, `ClaimGrant`,
the reclaim outcomes, the create and cancel arguments) live in `ff/core/records.py`.
"""

from __future__ import annotations

import msgspec

from ff.core.millis import Millis

__all__ = [
    "AcceptedBody",
    "AlreadySatisfiedBody",
    "BatchCreateItem",
    "BatchCreateResponse",
    "CancelResponse",
    "CancelledBody",
    "ChangedBody",
    "ClaimRequest",
    "CreateResponse",
    "CreatedBody",
    "DuplicateBody",
    "DuplicateSignalBody",
    "Health",
    "ItemErrorBody",
    "PriorityRequest",
    "PriorityResponse",
    "ReplayResponse",
    "ReplayedBody",
    "ResumeRequest",
    "ResumeResponse",
    "ResumedBody",
    "RevokeResponse",
    "RevokedBody",
    "RotateRequest",
    "SignalResponse",
    "TokenBody",
]


class _Tagged(msgspec.Struct, omit_defaults=True):
    """Base of the externally tagged results: exactly one field is set."""


# -- requests ---------------------------------------------------------------------------


class PriorityRequest(msgspec.Struct):
    """`PUT /v1/executions/{id}/priority`."""

    new_priority: int


class ClaimRequest(msgspec.Struct, kw_only=True):
    """`POST /v1/workers/{worker_id}/claim`: the worker's identity and what it can run."""

    lane_id: str
    worker_instance_id: str
    grant_ttl_ms: Millis
    capabilities: list[str] = msgspec.field(default_factory=list)


# -- responses --------------------------------------------------------------------------


class CreatedBody(msgspec.Struct):
    execution_id: str
    public_state: str


class DuplicateBody(msgspec.Struct):
    """The execution an idempotency key already named. `public_state` is ours (an addition
    to the reference's body, which carries only the id)."""

    execution_id: str
    public_state: str | None = None


class CreateResponse(_Tagged):
    """201 `{"Created": ...}` for a new execution, 200 `{"Duplicate": ...}` for a repeat."""

    Created: CreatedBody | None = None
    Duplicate: DuplicateBody | None = None


class ItemErrorBody(msgspec.Struct):
    """Why one item of a batch was refused: the status and error body a single request
    for it would have been answered with."""

    status: int
    error: str
    kind: str | None = None
    retryable: bool | None = None


class BatchCreateItem(_Tagged):
    """One item's answer in a batch create: `Created`, `Duplicate` or `Error`."""

    Created: CreatedBody | None = None
    Duplicate: DuplicateBody | None = None
    Error: ItemErrorBody | None = None


class BatchCreateResponse(msgspec.Struct):
    """`POST /v1/executions:batch`: one answer per submitted item, in order."""

    results: list[BatchCreateItem]


class CancelledBody(msgspec.Struct):
    execution_id: str
    public_state: str


class CancelResponse(_Tagged):
    Cancelled: CancelledBody | None = None


class ChangedBody(msgspec.Struct):
    execution_id: str


class PriorityResponse(_Tagged):
    Changed: ChangedBody | None = None


class ReplayedBody(msgspec.Struct):
    public_state: str


class ReplayResponse(_Tagged):
    Replayed: ReplayedBody | None = None


class RevokedBody(msgspec.Struct):
    lease_id: str
    lease_epoch: int


class AlreadySatisfiedBody(msgspec.Struct):
    reason: str


class RevokeResponse(_Tagged):
    """`{"Revoked": ...}`, or `{"AlreadySatisfied": {"reason": "no_active_lease"}}`."""

    Revoked: RevokedBody | None = None
    AlreadySatisfied: AlreadySatisfiedBody | None = None


class AcceptedBody(msgspec.Struct):
    signal_id: str
    effect: str


class DuplicateSignalBody(msgspec.Struct):
    existing_signal_id: str


class SignalResponse(_Tagged):
    """`{"Accepted": {"signal_id", "effect"}}` or `{"Duplicate": {"existing_signal_id"}}`."""

    Accepted: AcceptedBody | None = None
    Duplicate: DuplicateSignalBody | None = None


class TokenBody(msgspec.Struct):
    """`GET .../waitpoints/{waitpoint_id}/token` (served with `Cache-Control: no-store`)."""

    token: str


class RotateRequest(msgspec.Struct):
    """`POST /v1/admin/rotate-waitpoint-secret`."""

    new_kid: str
    new_secret_hex: str


class ResumeRequest(msgspec.Struct):
    """`POST /v1/executions/{id}/resume` (operator; optional body)."""

    resume_delay_ms: Millis = 0


class ResumedBody(msgspec.Struct):
    public_state: str


class ResumeResponse(_Tagged):
    Resumed: ResumedBody | None = None


class Health(msgspec.Struct):
    status: str = "ok"


class LaneList(msgspec.Struct, frozen=True):
    lanes: list[str]


class LaneCounts(msgspec.Struct, frozen=True):
    """Executions of a lane per public state (every state present, 0 when none)."""

    lane_id: str
    counts: dict[str, int]
