"""The typed errors of ff: one class per family, one snake_case code per cause.

Every business rejection from the function library arrives as `{0, code, detail...}` and is
turned into one of these by `error_for_code`. Each family knows its HTTP status, its `kind`
and whether a retry can help, so no layer above has to guess.
"""

from __future__ import annotations


class FFError(Exception):
    """Base of every error ff raises on purpose."""

    status = 500
    retryable = False

    def __init__(self, code: str, detail: str = "", *details: str) -> None:
        self.code = code
        self.detail = detail
        self.details = (detail, *details) if detail or details else ()
        super().__init__(f"{code}: {detail}" if detail else code)

    @property
    def kind(self) -> str | None:
        return self.code


class NotFoundError(FFError):
    status = 404

    @property
    def kind(self) -> str | None:
        return None


class ValidationError(FFError):
    """Bad input: nothing was written."""

    status = 400

    @property
    def kind(self) -> str | None:
        return None


class ConflictError(FFError):
    """The request collides with existing state; retrying the same request will not help."""

    status = 409


class ContentionError(FFError):
    """Lost a race (lease moved on, grant taken): re-read and retry may succeed."""

    status = 409
    retryable = True

    @property
    def kind(self) -> str | None:
        return "contention"


class StateConflictError(FFError):
    """The execution is in a state where the operation does not apply."""

    status = 409


class RateLimitedError(FFError):
    status = 429
    retryable = True


class UnavailableError(FFError):
    status = 503
    retryable = True


class GatewayTimeoutError(FFError):
    """A server-side deadline ran out (a rotation over 120 s); repeating is safe."""

    status = 504
    retryable = True


class BackendError(FFError):
    """Valkey could not be reached or answered unexpectedly."""

    status = 500
    retryable = True


class ExecutionNotActiveError(ContentionError):
    """A lease holder's call found the execution no longer active under its lease.

    The details carry terminal_outcome, current_lease_epoch, lifecycle_phase and
    current_attempt_id so a client can recognise its own earlier success (same-holder replay).
    """

    @property
    def terminal_outcome(self) -> str:
        return self.details[0] if self.details else ""

    @property
    def lease_epoch(self) -> str:
        return self.details[1] if len(self.details) > 1 else ""

    @property
    def lifecycle_phase(self) -> str:
        return self.details[2] if len(self.details) > 2 else ""

    @property
    def attempt_id(self) -> str:
        return self.details[3] if len(self.details) > 3 else ""


_FAMILIES: dict[type[FFError], tuple[str, ...]] = {
    NotFoundError: (
        "execution_not_found", "flow_not_found", "budget_not_found", "quota_policy_not_found",
        "waitpoint_not_found", "attempt_not_found", "result_not_found", "signal_not_found",
    ),
    ValidationError: (
        "invalid_input", "invalid_args", "invalid_policy_json", "invalid_capabilities",
        "capability_mismatch", "invalid_tag_key", "invalid_lane_id", "invalid_execution_id",
        "invalid_cursor", "fence_required", "partial_fence_triple", "payload_too_large",
        "invalid_token", "missing_token", "token_expired", "invalid_priority",
        "invalid_offset", "invalid_kid", "invalid_secret_hex", "invalid_grace_ms",
        "invalid_frame_type", "invalid_blocking_reason", "invalid_dependency",
        "signal_limit_exceeded", "invalid_waitpoint_key", "unauthorized",
        "invalid_resume_condition", "invalid_waitpoint_for_execution",
        "use_pending_with_extras_unsupported", "additional_waitpoint_binding_malformed",
        "waitpoint_not_token_bound", "pending_waitpoint_expired", "invalid_secret",
        "retention_limit_exceeded", "patch_depth_exceeded", "summary_too_large",
        "execution_not_in_flow",
        "batch_too_large",
    ),
    ConflictError: (
        "active_attempt_exists", "grant_already_exists", "execution_already_in_flow",
        "dependency_already_exists", "cycle_detected", "self_referencing_edge",
        "waitpoint_already_exists", "rotation_conflict", "waitpoint_closed",
        "already_suspended", "waitpoint_not_pending", "waitpoint_not_open",
        "waitpoint_already_exists", "rotation_conflict", "edge_group_policy_already_fixed",
    ),
    ContentionError: (
        "lease_conflict", "stale_lease", "invalid_claim_grant", "claim_grant_expired",
        "execution_not_leaseable", "execution_not_eligible", "execution_not_in_eligible_set",
        "use_claim_resumed_execution", "not_a_resumed_execution", "no_active_lease",
        "execution_not_reclaimable", "stale_graph_revision",
    ),
    ExecutionNotActiveError: ("execution_not_active",),
    RateLimitedError: ("resource_exhausted", "rotation_in_progress"),
    UnavailableError: ("unavailable", "hmac_secret_not_initialized"),
    StateConflictError: (
        "execution_not_terminal", "max_replays_exhausted", "max_retries_exhausted",
        "terminal", "flow_already_terminal", "lease_expired", "lease_revoked",
        "execution_not_suspended", "not_runnable", "partition_mismatch", "stream_closed",
        "target_not_signalable",
    ),
}

_CLASS_BY_CODE = {code: cls for cls, codes in _FAMILIES.items() for code in codes}


def error_for_code(code: str, *details: str) -> FFError:
    """The typed exception for a library error code; unknown codes are state conflicts."""
    cls = _CLASS_BY_CODE.get(code, StateConflictError)
    return cls(code, *details)

