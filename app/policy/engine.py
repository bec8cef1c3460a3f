"""The core's one entry point: any input, against one customer's state, at a clock.

The worker, the release timer, recovery and `tact simulate` all call `apply_record`; what a
record means is decided here, never by the caller.
"""

from __future__ import annotations

from app.policy.decide import NOTHING_LOGGED, Logged, decision_time
from app.policy.events import delete_customer, on_event, on_profile
from app.policy.model import (
    Applied,
    Candidate,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    Decision,
    Outcome,
)
from app.policy.rules import Policy
from app.policy.timeline import decide, release_due
from app.policy.validate import candidate_problem, event_problem, profile_problem
from app.policy.valueclass import value

__all__ = ["NOTHING_LOGGED", "Applied", "Due", "Input", "Logged", "ProfileDeleted", "apply_record"]


@value
class ProfileDeleted:
    """A tombstone on the profiles topic: forget the customer."""

    customer_id: str


@value
class Due:
    """The release timer: this customer holds work that may be due by the clock."""

    customer_id: str


Input = Candidate | CustomerEvent | CustomerProfile | ProfileDeleted | Due


def record_time(record: Input) -> int | None:
    if isinstance(record, Candidate):
        return record.created_at
    if isinstance(record, CustomerEvent):
        return record.occurred_at
    return None


def decided_at(record: Input, clock: int) -> int:
    """The time the core decides this record at (the clock, for a record without a time)."""
    at = record_time(record)
    return clock if at is None else decision_time(at, clock)


def apply_record(
    state: CustomerState | None,
    record: Input,
    clock: int,
    policy: Policy,
    logged: Logged = NOTHING_LOGGED,
) -> Applied:
    """Apply one input at wall-clock (or simulated) time `clock`."""
    current = state or CustomerState(record.customer_id)
    if isinstance(record, Due):
        return release_due(state, clock, policy, logged) if state else Applied(None)
    if isinstance(record, ProfileDeleted):
        return delete_customer(current, clock, policy)
    if isinstance(record, CustomerProfile):
        problem = profile_problem(record)
        return Applied(state, problem=problem) if problem else Applied(on_profile(current, record))
    if isinstance(record, CustomerEvent):
        problem = event_problem(record, clock)
        if problem:
            return Applied(state, problem=problem)
        return on_event(current, record, decided_at(record, clock), policy, logged)
    problem = candidate_problem(record, clock)
    if problem:
        return Applied(state, problem=problem)
    return decide(current, record, decided_at(record, clock), policy, logged)


def reflects(state: CustomerState | None, decision: Decision) -> bool:
    """Whether this state already holds a published decision (recovery may then pass it)."""
    if state is None:
        return True  # the customer is gone: nothing is left to hold it
    if decision.message_id not in state.decided:
        return False
    held = any(p.candidate.message_id == decision.message_id for p in state.pending)
    return decision.outcome is Outcome.DEFERRED or not held
