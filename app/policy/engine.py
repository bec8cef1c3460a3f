"""One input record against one customer's state: the step both the worker and replay take."""

from __future__ import annotations

from app.policy.decide import decide, decision_time, forget, on_event, on_profile, release_due
from app.policy.model import (
    Candidate,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    Decision,
    OutboundMessage,
)
from app.policy.rules import Policy
from app.policy.validate import candidate_problem, event_problem, profile_problem
from app.policy.valueclass import value


@value
class ProfileDeleted:
    """A tombstone on the profiles topic: forget the customer."""

    customer_id: str


Input = Candidate | CustomerEvent | CustomerProfile | ProfileDeleted


@value
class Applied:
    state: CustomerState | None  # None: the customer is forgotten
    decisions: tuple[Decision, ...] = ()
    outbound: tuple[OutboundMessage, ...] = ()
    problem: str | None = None  # the record cannot be used: a dead letter


def record_time(record: Input) -> int | None:
    if isinstance(record, Candidate):
        return record.created_at
    if isinstance(record, CustomerEvent):
        return record.occurred_at
    return None


def apply_record(state: CustomerState | None, record: Input, clock: int, policy: Policy) -> Applied:
    """Apply one record at wall-clock (or simulated) time `clock`."""
    current = state or CustomerState(record.customer_id)
    if isinstance(record, ProfileDeleted):
        return Applied(None, forget(current, clock, policy))
    if isinstance(record, CustomerProfile):
        problem = profile_problem(record)
        return Applied(state, problem=problem) if problem else Applied(on_profile(current, record))
    if isinstance(record, CustomerEvent):
        problem = event_problem(record, clock)
        if problem:
            return Applied(state, problem=problem)
        step = on_event(current, record, decision_time(record.occurred_at, clock), policy)
        return Applied(step.state, step.decisions, step.outbound)
    problem = candidate_problem(record, clock)
    if problem:
        return Applied(state, problem=problem)
    step = decide(current, record, decision_time(record.created_at, clock), policy)
    return Applied(step.state, step.decisions, step.outbound)


def release(state: CustomerState, clock: int, policy: Policy) -> Applied:
    """Decide the customer's held candidates that are due by `clock`."""
    step = release_due(state, clock, policy)
    return Applied(step.state, step.decisions, step.outbound)
