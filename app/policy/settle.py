"""Recording a verdict: the customer's state takes it in, and the records that announce it."""

from __future__ import annotations

from app.policy.dedupe import claimed, unclaimed
from app.policy.fallback_rules import awaiting_delivery
from app.policy.model import (
    Applied,
    Candidate,
    Contact,
    CustomerState,
    Outcome,
    Pending,
    Transition,
    evolve,
)
from app.policy.outbound import outbound_message
from app.policy.rules import Policy
from app.policy.verdict import Verdict, decision_of


def settle(state: CustomerState, candidate: Candidate, verdict: Verdict, policy: Policy) -> Applied:
    decision = decision_of(candidate, verdict, policy)
    decided = state.decided.put(candidate.message_id, verdict.at, None)
    if verdict.outcome is Outcome.DEFERRED:
        assert verdict.release_at is not None
        held = Pending(candidate, verdict.release_at, verdict.hold_reason)
        dedupe = claimed(state.dedupe, candidate, verdict.at)
        pending = (*state.pending, held)
        return Applied(evolve(state, decided=decided, dedupe=dedupe, pending=pending), (decision,))
    steps = _step_transition(candidate, verdict)
    if verdict.outcome is not Outcome.SENT or verdict.channel is None:
        state = evolve(state, decided=decided, dedupe=unclaimed(state.dedupe, candidate))
        return Applied(state, (decision,), transitions=steps)
    sends = state.sends.add(verdict.channel, candidate.category.value, verdict.at)
    dedupe = claimed(state.dedupe, candidate, verdict.at)
    contact = Contact(verdict.channel, candidate.journey, verdict.at)
    awaiting = awaiting_delivery(state, candidate, verdict.channel, verdict.at, policy)
    state = evolve(
        state, sends=sends, decided=decided, dedupe=dedupe, last_contact=contact, awaiting=awaiting
    )
    message = outbound_message(state, candidate, verdict.channel, verdict.at, policy)
    return Applied(state, (decision,), (message,), transitions=steps)


def _step_transition(candidate: Candidate, verdict: Verdict) -> tuple[Transition, ...]:
    """A journey step's final decision moves its instance's funnel."""
    if not candidate.journey:
        return ()
    reason = verdict.reasons[0] if verdict.reasons else ""
    kind = f"step_{verdict.outcome.value}"
    return (
        Transition(
            candidate.customer_id,
            candidate.journey,
            candidate.journey_key,
            kind,
            verdict.at,
            candidate.step,
            reason,
        ),
    )


def without_pending(state: CustomerState, message_id: str) -> CustomerState:
    if not any(p.candidate.message_id == message_id for p in state.pending):
        return state
    return evolve(
        state, pending=tuple(p for p in state.pending if p.candidate.message_id != message_id)
    )
