"""Customer events and profiles: what the customer did and who they are."""

from __future__ import annotations

from app.policy.bounds import MAX_REMEMBERED_ATTRIBUTES_BYTES, mapping_bytes
from app.policy.consent import with_consent_event
from app.policy.decide import Logged, release_due
from app.policy.model import (
    Applied,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    Decision,
    Outcome,
    evolve,
)
from app.policy.rules import Policy
from app.policy.settle import settle
from app.policy.verdict import Verdict


def on_event(
    state: CustomerState, event: CustomerEvent, now: int, policy: Policy, logged: Logged
) -> Applied:
    """Remember a customer event; consent events change what later decisions may do."""
    released = release_due(state, now, policy, logged)
    current = released.kept
    consent = with_consent_event(current.consent, event)
    if consent is not current.consent:
        current = evolve(current, consent=consent)
    return Applied(
        remember(current, event, policy.limits.context_events),
        released.decisions,
        released.outbound,
    )


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


def delete_customer(state: CustomerState, now: int, policy: Policy) -> tuple[Decision, ...]:
    """The customer is deleted: every candidate still held gets its final decision, cancelled."""
    verdict = Verdict(Outcome.CANCELLED, now, reasons=("customer_deleted",))
    return tuple(
        settle(state, held.candidate, verdict, policy).decisions[0] for held in state.pending
    )
