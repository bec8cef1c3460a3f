"""Customer events and profiles: what the customer did and who they are."""

from __future__ import annotations

from app.policy.bounds import MAX_REMEMBERED_ATTRIBUTES_BYTES, mapping_bytes
from app.policy.consent import with_consent_event
from app.policy.decide import Logged
from app.policy.feedback import on_feedback
from app.policy.journeys import on_journey_event
from app.policy.model import (
    Applied,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    Outcome,
    Transition,
    evolve,
)
from app.policy.rules import Policy
from app.policy.settle import settle
from app.policy.timeline import release_due
from app.policy.verdict import Verdict


def on_event(
    state: CustomerState, event: CustomerEvent, now: int, policy: Policy, logged: Logged
) -> Applied:
    """Remember a customer event: consent events change what later decisions may do, and
    journeys start, go on or end; a step it makes due (a first step, a wait_for) fires now."""
    released = release_due(state, now, policy, logged)
    current = released.kept
    consent = with_consent_event(current.consent, event)
    if consent is not current.consent:
        current = evolve(current, consent=consent)
    reacted = on_feedback(current, event, now, policy, logged)
    moved = on_journey_event(reacted.kept, event, now, policy, logged)
    current = remember(moved.kept, event, policy.limits.context_events)
    return released.then(reacted).then(moved).then(release_due(current, now, policy, logged))


def remember(state: CustomerState, event: CustomerEvent, keep: int) -> CustomerState:
    """The event joins the recent ones (context for gateways), without large attributes."""
    if not keep or any(e.event_id == event.event_id for e in state.recent):
        return state
    if mapping_bytes(dict(event.attributes)) > MAX_REMEMBERED_ATTRIBUTES_BYTES:
        event = CustomerEvent(
            event.event_id, event.customer_id, event.type, event.occurred_at, event.channel
        )
    recent = tuple(sorted((*state.recent, event), key=lambda e: e.occurred_at))
    return evolve(state, recent=recent[-keep:])


def on_profile(state: CustomerState, profile: CustomerProfile) -> CustomerState:
    return evolve(state, profile=profile)


def delete_customer(state: CustomerState, now: int, policy: Policy) -> Applied:
    """The customer is deleted: every candidate still held gets its final decision, cancelled,
    and every journey instance ends."""
    verdict = Verdict(Outcome.CANCELLED, now, reasons=("customer_deleted",))
    applied = Applied(None)
    for held in state.pending:
        settled = settle(state, held.candidate, verdict, policy)
        applied = Applied(
            None,
            applied.decisions + settled.decisions,
            transitions=applied.transitions + settled.transitions,
        )
    ended = tuple(
        Transition(state.customer_id, i.journey, i.key, "exited", now, reason="customer_deleted")
        for i in state.journeys
    )
    return Applied(None, applied.decisions, transitions=applied.transitions + ended)
