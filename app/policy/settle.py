"""Recording a verdict: the customer's state takes it in, and the records that announce it."""

from __future__ import annotations

from app.policy.dedupe import claim, unclaim
from app.policy.model import Applied, Candidate, CustomerState, Outcome, Pending, evolve
from app.policy.outbound import outbound_message
from app.policy.rules import Policy
from app.policy.verdict import Verdict, decision_of


def settle(state: CustomerState, candidate: Candidate, verdict: Verdict, policy: Policy) -> Applied:
    decision = decision_of(candidate, verdict, policy)
    state = evolve(state, decided=state.decided.put(candidate.message_id, verdict.at, None))
    if verdict.outcome is Outcome.DEFERRED:
        assert verdict.release_at is not None
        held = Pending(candidate, verdict.release_at, verdict.hold_reason)
        state = evolve(claim(state, candidate, verdict.at), pending=(*state.pending, held))
        return Applied(state, (decision,))
    if verdict.outcome is not Outcome.SENT or verdict.channel is None:
        return Applied(unclaim(state, candidate), (decision,))
    sends = state.sends.add(verdict.channel, candidate.category.value, verdict.at)
    state = evolve(claim(state, candidate, verdict.at), sends=sends)
    message = outbound_message(state, candidate, verdict.channel, verdict.at, policy)
    return Applied(state, (decision,), (message,))


def without_pending(state: CustomerState, message_id: str) -> CustomerState:
    if not any(p.candidate.message_id == message_id for p in state.pending):
        return state
    return evolve(
        state, pending=tuple(p for p in state.pending if p.candidate.message_id != message_id)
    )
