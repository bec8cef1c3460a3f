"""Small constructors for the core's values, with defaults a test can override by name."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from app.policy.decide import NOTHING_LOGGED
from app.policy.events import on_event as core_on_event
from app.policy.model import (
    HOUR,
    Applied,
    Audience,
    Candidate,
    Category,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    Urgency,
)
from app.policy.policy_file import load_policy
from app.policy.rules import Policy
from app.policy.timeline import decide as core_decide
from app.policy.timeline import release_due as core_release_due

# Noon UTC on a Wednesday: not in default quiet hours for UTC customers.
T0 = int(datetime(2026, 11, 18, 12, 0, tzinfo=UTC).timestamp() * 1000)
ALL = ("email", "sms", "push", "call", "messenger")


def at(hours: float = 0) -> int:
    return T0 + int(hours * HOUR)


def profile(
    customer_id: str = "c1", timezone: str = "UTC", channels: tuple[str, ...] = ALL, **changes: Any
) -> CustomerProfile:
    made = CustomerProfile(
        customer_id, timezone, {c: True for c in channels}, {c: True for c in channels}
    )
    return replace(made, **changes)


def candidate(message_id: str = "m1", customer_id: str = "c1", **changes: Any) -> Candidate:
    made = Candidate(
        message_id=message_id,
        customer_id=customer_id,
        category=Category.PROMO,
        audience=Audience.MASS,
        channels=("email",),
        urgency=Urgency.IMMEDIATE,
        created_at=T0,
        template="offer",
    )
    return replace(made, **changes)


def event(event_id: str = "e1", customer_id: str = "c1", **changes: Any) -> CustomerEvent:
    return replace(CustomerEvent(event_id, customer_id, "email_opened", T0, "email"), **changes)


def state(customer_id: str = "c1", **profile_changes: Any) -> CustomerState:
    return CustomerState(customer_id, profile(customer_id, **profile_changes))


def default_policy() -> Policy:
    return load_policy()


# The core's inner steps, with nothing logged (no crash to recover from), for tests of one rule.
def decide(s: CustomerState, c: Candidate, now: int, policy: Policy) -> Applied:
    return core_decide(s, c, now, policy, NOTHING_LOGGED)


def release_due(s: CustomerState, now: int, policy: Policy) -> Applied:
    return core_release_due(s, now, policy, NOTHING_LOGGED)


def on_event(s: CustomerState, e: CustomerEvent, now: int, policy: Policy) -> Applied:
    return core_on_event(s, e, now, policy, NOTHING_LOGGED)
