"""What deciding costs for a customer with a long history: 0, 1,000 and 100,000 messages in the
dedupe window. The policy allows 1,500 per customer (about the most a state within one changelog
record can remember with the other limits at their defaults): at 1,000 every probe is a full
decision against that history; at 100,000 the customer is at the limit and probes are refused."""

from __future__ import annotations

import time
from dataclasses import replace

from app.clock import now_ms
from app.collector import collector_for_deciding, collector_off
from app.policy.engine import apply_record
from app.policy.model import (
    CHANNELS,
    Audience,
    Candidate,
    Category,
    CustomerProfile,
    CustomerState,
    Urgency,
)
from app.policy.policy_file import load_policy
from app.policy.rules import Policy

HISTORIES = (0, 1_000, 100_000)
LIMIT = 1_500


def decide_us_by_history(
    histories: tuple[int, ...] = HISTORIES, probes: int = 2000
) -> dict[str, float]:
    """Per history size: microseconds to decide one more candidate for that customer."""
    default, clock = load_policy(), now_ms()
    policy = replace(default, limits=replace(default.limits, max_messages_per_customer=LIMIT))
    result = {}
    with collector_for_deciding(), collector_off():  # as the worker decides a batch
        for size in histories:
            state = _customer_with(size, clock, policy)
            started = time.perf_counter()
            for i in range(probes):
                category = Category.PROMO if i % 2 else Category.SERVICE
                apply_record(state, _candidate(f"probe-{i}", category, clock), clock, policy)
            result[str(size)] = round((time.perf_counter() - started) * 1e6 / probes, 2)
    return result


def _customer_with(size: int, clock: int, policy: Policy) -> CustomerState:
    profile = CustomerProfile(
        "hot", "UTC", dict.fromkeys(CHANNELS, True), dict.fromkeys(CHANNELS, True)
    )
    state: CustomerState | None = CustomerState("hot", profile)
    for i in range(size):
        candidate = _candidate(f"history-{i}", Category.SERVICE, clock - size + i)
        state = apply_record(state, candidate, clock, policy).state
    assert state is not None
    return state


def _candidate(message_id: str, category: Category, at: int) -> Candidate:
    return Candidate(
        message_id=message_id,
        customer_id="hot",
        category=category,
        audience=Audience.PERSONAL,
        channels=("sms", "email"),
        urgency=Urgency.IMMEDIATE,
        created_at=at,
        template="code",
    )
