"""The execution state model: seven dimensions, the derived `public_state`, the lane
index each state lives in, and the transitions.

This module is the only source of these facts. `TRANSITIONS` is the table of what each
library function writes (docs/lifecycle.md and the tests that compare it with what Lua
actually writes are produced from it); `public_state_of` and `lane_index_of` are the rules
for the public state and the index set; the Lua library gets the same tables generated
from here (its `facts` area, ff/script/_source.py).
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class LifecyclePhase(StrEnum):
    SUBMITTED = "submitted"
    RUNNABLE = "runnable"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINAL = "terminal"


class OwnershipState(StrEnum):
    UNOWNED = "unowned"
    LEASED = "leased"
    LEASE_EXPIRED_RECLAIMABLE = "lease_expired_reclaimable"
    LEASE_REVOKED = "lease_revoked"


class EligibilityState(StrEnum):
    ELIGIBLE_NOW = "eligible_now"
    NOT_ELIGIBLE_UNTIL_TIME = "not_eligible_until_time"
    BLOCKED_BY_DEPENDENCIES = "blocked_by_dependencies"
    BLOCKED_BY_BUDGET = "blocked_by_budget"
    BLOCKED_BY_QUOTA = "blocked_by_quota"
    BLOCKED_BY_ROUTE = "blocked_by_route"
    BLOCKED_BY_LANE_STATE = "blocked_by_lane_state"
    BLOCKED_BY_OPERATOR = "blocked_by_operator"
    NOT_APPLICABLE = "not_applicable"


class BlockingReason(StrEnum):
    NONE = "none"
    WAITING_FOR_WORKER = "waiting_for_worker"
    WAITING_FOR_RETRY_BACKOFF = "waiting_for_retry_backoff"
    WAITING_FOR_RESUME_DELAY = "waiting_for_resume_delay"
    WAITING_FOR_DELAY = "waiting_for_delay"
    WAITING_FOR_SIGNAL = "waiting_for_signal"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    WAITING_FOR_CALLBACK = "waiting_for_callback"
    WAITING_FOR_TOOL_RESULT = "waiting_for_tool_result"
    WAITING_FOR_CHILDREN = "waiting_for_children"
    WAITING_FOR_BUDGET = "waiting_for_budget"
    WAITING_FOR_QUOTA = "waiting_for_quota"
    WAITING_FOR_CAPABLE_WORKER = "waiting_for_capable_worker"
    WAITING_FOR_LOCALITY_MATCH = "waiting_for_locality_match"
    PAUSED_BY_OPERATOR = "paused_by_operator"
    PAUSED_BY_POLICY = "paused_by_policy"
    PAUSED_BY_FLOW_CANCEL = "paused_by_flow_cancel"


class TerminalOutcome(StrEnum):
    NONE = "none"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SKIPPED = "skipped"


class AttemptState(StrEnum):
    NONE = "none"
    PENDING_FIRST_ATTEMPT = "pending_first_attempt"
    RUNNING_ATTEMPT = "running_attempt"
    ATTEMPT_INTERRUPTED = "attempt_interrupted"
    PENDING_RETRY_ATTEMPT = "pending_retry_attempt"
    PENDING_REPLAY_ATTEMPT = "pending_replay_attempt"
    ATTEMPT_TERMINAL = "attempt_terminal"


class PublicState(StrEnum):
    WAITING = "waiting"
    DELAYED = "delayed"
    RATE_LIMITED = "rate_limited"
    WAITING_CHILDREN = "waiting_children"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    RESUMABLE = "resumable"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SKIPPED = "skipped"



TERMINAL_PUBLIC_STATES = frozenset(
    {PublicState.COMPLETED, PublicState.FAILED, PublicState.CANCELLED,
     PublicState.EXPIRED, PublicState.SKIPPED}
)

PUBLIC_BY_OUTCOME = {
    TerminalOutcome.SUCCESS: PublicState.COMPLETED,
    TerminalOutcome.FAILED: PublicState.FAILED,
    TerminalOutcome.CANCELLED: PublicState.CANCELLED,
    TerminalOutcome.EXPIRED: PublicState.EXPIRED,
    TerminalOutcome.SKIPPED: PublicState.SKIPPED,
}

PUBLIC_BY_ELIGIBILITY = {
    EligibilityState.NOT_ELIGIBLE_UNTIL_TIME: PublicState.DELAYED,
    EligibilityState.BLOCKED_BY_DEPENDENCIES: PublicState.WAITING_CHILDREN,
    EligibilityState.BLOCKED_BY_BUDGET: PublicState.RATE_LIMITED,
    EligibilityState.BLOCKED_BY_QUOTA: PublicState.RATE_LIMITED,
}


PUBLIC_BY_PHASE = {
    LifecyclePhase.ACTIVE: PublicState.ACTIVE,
    LifecyclePhase.SUSPENDED: PublicState.SUSPENDED,
    LifecyclePhase.SUBMITTED: PublicState.WAITING,
}


def public_state_of(
    phase: str, eligibility: str, outcome: str = TerminalOutcome.NONE
) -> PublicState:
    """The user-facing state. Route, lane and operator blocks read `waiting`;
    budget and quota blocks read `rate_limited` (Lua reads this rule as a generated table)."""
    if phase == LifecyclePhase.TERMINAL:
        return PUBLIC_BY_OUTCOME.get(TerminalOutcome(outcome), PublicState.FAILED)
    if phase == LifecyclePhase.RUNNABLE:
        return PUBLIC_BY_ELIGIBILITY.get(EligibilityState(eligibility), PublicState.WAITING)
    return PUBLIC_BY_PHASE.get(LifecyclePhase(phase), PublicState.WAITING)


# The lane index (`ff:idx:{fp:N}:lane:<lane>:<name>`) a runnable execution lives in, by
# eligibility. No function writes blocked_by_lane_state, so it has no index.
LANE_INDEX_BY_ELIGIBILITY = {
    EligibilityState.ELIGIBLE_NOW: "eligible",
    EligibilityState.NOT_ELIGIBLE_UNTIL_TIME: "delayed",
    EligibilityState.BLOCKED_BY_DEPENDENCIES: "blocked:dependencies",
    EligibilityState.BLOCKED_BY_BUDGET: "blocked:budget",
    EligibilityState.BLOCKED_BY_QUOTA: "blocked:quota",
    EligibilityState.BLOCKED_BY_ROUTE: "blocked:route",
    EligibilityState.BLOCKED_BY_OPERATOR: "blocked:operator",
}


def lane_index_of(phase: str, eligibility: str, ownership: str) -> str | None:
    """The lane index an execution in this state is in (None: none)."""
    if phase == LifecyclePhase.TERMINAL:
        return "terminal"
    if phase == LifecyclePhase.SUSPENDED:
        return "suspended"
    if phase == LifecyclePhase.ACTIVE:
        return "active" if ownership == OwnershipState.LEASED else "reclaimable"
    if phase == LifecyclePhase.RUNNABLE:
        return LANE_INDEX_BY_ELIGIBILITY.get(EligibilityState(eligibility))
    return None


def _every_state() -> list[tuple[PublicState, str]]:
    """(public state, lane index) of every combination the model allows."""
    pairs = []
    for phase in LifecyclePhase:
        for eligibility in EligibilityState:
            for ownership in OwnershipState:
                for outcome in TerminalOutcome:
                    index = lane_index_of(phase, eligibility, ownership)
                    if index is not None:
                        pairs.append((public_state_of(phase, eligibility, outcome), index))
    return pairs


def lane_indexes_for(public: str) -> tuple[str, ...]:
    """Every lane index that can hold an execution whose public state is `public`."""
    return tuple(dict.fromkeys(index for state, index in _every_state() if state == public))


# Every lane index an execution that has not ended can be in (the terminal sweep).
LIVE_LANE_INDEXES = tuple(
    dict.fromkeys(index for _, index in _every_state() if index != "terminal")
)



def _public_state_by_live_index() -> dict[str, PublicState]:
    """Each live lane index holds executions of exactly one public state."""
    found: dict[str, set[PublicState]] = {}
    for state, index in _every_state():
        found.setdefault(index, set()).add(state)
    by_index = {index: held.pop() for index, held in found.items()
                if index != "terminal" and len(held) == 1}
    assert set(by_index) == set(LIVE_LANE_INDEXES), "a live index holds several states"
    return by_index


PUBLIC_STATE_BY_LIVE_INDEX = _public_state_by_live_index()

# Where a claim may start: a grant or fresh claim needs an execution runnable and eligible
# now; a reclaim needs it active with its lease lost in one of these ways.
CLAIMABLE_PHASE, CLAIMABLE_ELIGIBILITY = LifecyclePhase.RUNNABLE, EligibilityState.ELIGIBLE_NOW
RECLAIMABLE_OWNERSHIPS = frozenset(
    {OwnershipState.LEASE_EXPIRED_RECLAIMABLE, OwnershipState.LEASE_REVOKED})

# Admission blocks: blocking reason -> the eligibility state it sets.
BLOCKS = {
    BlockingReason.WAITING_FOR_BUDGET: EligibilityState.BLOCKED_BY_BUDGET,
    BlockingReason.WAITING_FOR_QUOTA: EligibilityState.BLOCKED_BY_QUOTA,
    BlockingReason.WAITING_FOR_CAPABLE_WORKER: EligibilityState.BLOCKED_BY_ROUTE,
    BlockingReason.PAUSED_BY_OPERATOR: EligibilityState.BLOCKED_BY_OPERATOR,
}

# The state fields every transition writes together (with public_state).
STATE_FIELDS = (
    "lifecycle_phase", "ownership_state", "eligibility_state", "blocking_reason",
    "blocking_detail", "terminal_outcome", "attempt_state",
)


class StateVector(msgspec.Struct, frozen=True):
    lifecycle_phase: str
    ownership_state: str
    eligibility_state: str
    blocking_reason: str
    terminal_outcome: str
    attempt_state: str
    public_state: str


class Transition(msgspec.Struct, frozen=True):
    """What one library function writes. `None` means the dimension is left as it was."""

    function: str
    description: str
    phase: LifecyclePhase
    ownership: OwnershipState | None
    eligibility: EligibilityState | None
    blocking: BlockingReason | None
    outcome: TerminalOutcome | None
    attempt: AttemptState | None

    @property
    def public(self) -> PublicState | None:
        if self.eligibility is None and self.phase == LifecyclePhase.RUNNABLE:
            return None
        return public_state_of(
            self.phase, self.eligibility or "not_applicable", self.outcome or "none"
        )


_P, _O, _E, _B, _T, _A = (
    LifecyclePhase, OwnershipState, EligibilityState, BlockingReason, TerminalOutcome, AttemptState,
)

TRANSITIONS: tuple[Transition, ...] = (
    Transition("ff_create_execution", "create, runnable now", _P.RUNNABLE, _O.UNOWNED,
               _E.ELIGIBLE_NOW, _B.WAITING_FOR_WORKER, _T.NONE, _A.PENDING_FIRST_ATTEMPT),
    Transition("ff_create_execution", "create with a future delay", _P.RUNNABLE, _O.UNOWNED,
               _E.NOT_ELIGIBLE_UNTIL_TIME, _B.WAITING_FOR_DELAY, _T.NONE,
               _A.PENDING_FIRST_ATTEMPT),
    Transition("ff_claim_execution", "claim (fresh, retry or replay attempt)", _P.ACTIVE,
               _O.LEASED, _E.NOT_APPLICABLE, _B.NONE, _T.NONE, _A.RUNNING_ATTEMPT),
    Transition("ff_claim_resumed_execution", "claim an interrupted attempt", _P.ACTIVE,
               _O.LEASED, _E.NOT_APPLICABLE, _B.NONE, _T.NONE, _A.RUNNING_ATTEMPT),
    Transition("ff_reclaim_execution", "reclaim after lease expiry or revocation", _P.ACTIVE,
               _O.LEASED, _E.NOT_APPLICABLE, _B.NONE, _T.NONE, _A.RUNNING_ATTEMPT),
    Transition("ff_mark_lease_expired_if_due", "lease not renewed in time", _P.ACTIVE,
               _O.LEASE_EXPIRED_RECLAIMABLE, None, _B.WAITING_FOR_WORKER, _T.NONE,
               _A.ATTEMPT_INTERRUPTED),
    Transition("ff_revoke_lease", "operator revokes the lease", _P.ACTIVE, _O.LEASE_REVOKED,
               None, _B.WAITING_FOR_WORKER, _T.NONE, _A.ATTEMPT_INTERRUPTED),
    Transition("ff_complete_execution", "complete", _P.TERMINAL, _O.UNOWNED,
               _E.NOT_APPLICABLE, _B.NONE, _T.SUCCESS, _A.ATTEMPT_TERMINAL),
    Transition("ff_fail_execution", "fail with a retry left", _P.RUNNABLE, _O.UNOWNED,
               _E.NOT_ELIGIBLE_UNTIL_TIME, _B.WAITING_FOR_RETRY_BACKOFF, _T.NONE,
               _A.PENDING_RETRY_ATTEMPT),
    Transition("ff_fail_execution", "fail, retries exhausted (also reclaim cap)", _P.TERMINAL,
               _O.UNOWNED, _E.NOT_APPLICABLE, _B.NONE, _T.FAILED, _A.ATTEMPT_TERMINAL),
    Transition("ff_delay_execution", "worker delays its attempt", _P.RUNNABLE, _O.UNOWNED,
               _E.NOT_ELIGIBLE_UNTIL_TIME, _B.WAITING_FOR_DELAY, _T.NONE,
               _A.ATTEMPT_INTERRUPTED),
    Transition("ff_cancel_execution",
               "cancel in any non-terminal phase (attempt_terminal once an attempt ran)",
               _P.TERMINAL, _O.UNOWNED, _E.NOT_APPLICABLE, _B.NONE, _T.CANCELLED, None),
    Transition("ff_expire_execution",
               "attempt timeout or deadline (attempt_terminal once an attempt ran)",
               _P.TERMINAL, _O.UNOWNED, _E.NOT_APPLICABLE, _B.NONE, _T.EXPIRED, None),
    Transition("ff_promote_delayed", "delay elapsed", _P.RUNNABLE, _O.UNOWNED,
               _E.ELIGIBLE_NOW, _B.WAITING_FOR_WORKER, _T.NONE, None),
    Transition("ff_block_execution_for_admission", "no capable worker", _P.RUNNABLE,
               None, _E.BLOCKED_BY_ROUTE, _B.WAITING_FOR_CAPABLE_WORKER, _T.NONE, None),
    Transition("ff_unblock_execution", "block cleared", _P.RUNNABLE, None,
               _E.ELIGIBLE_NOW, _B.WAITING_FOR_WORKER, _T.NONE, None),
    Transition("ff_replay_execution", "replay a terminal execution", _P.RUNNABLE, _O.UNOWNED,
               _E.ELIGIBLE_NOW, _B.WAITING_FOR_WORKER, _T.NONE, _A.PENDING_REPLAY_ATTEMPT),
    Transition("ff_replay_execution", "replay a skipped flow member (edges reset)",
               _P.RUNNABLE, _O.UNOWNED, _E.BLOCKED_BY_DEPENDENCIES, _B.WAITING_FOR_CHILDREN,
               _T.NONE, _A.PENDING_REPLAY_ATTEMPT),
    Transition("ff_add_execution_to_flow", "member held until its edges are applied",
               _P.RUNNABLE, None, _E.BLOCKED_BY_DEPENDENCIES, _B.WAITING_FOR_CHILDREN,
               _T.NONE, None),
    Transition("ff_apply_dependency_to_child", "edge applied to a runnable child",
               _P.RUNNABLE, None, _E.BLOCKED_BY_DEPENDENCIES, _B.WAITING_FOR_CHILDREN,
               _T.NONE, None),
    Transition("ff_resolve_dependency", "dependencies satisfied (attempt none -> first)",
               _P.RUNNABLE, None, _E.ELIGIBLE_NOW, _B.WAITING_FOR_WORKER, _T.NONE, None),
    Transition("ff_resolve_dependency",
               "dependency impossible: skipped (attempt_terminal once an attempt ran)",
               _P.TERMINAL, _O.UNOWNED, _E.NOT_APPLICABLE, _B.NONE, _T.SKIPPED, None),
)


def transitions_for(function: str) -> tuple[Transition, ...]:
    return tuple(t for t in TRANSITIONS if t.function == function)
