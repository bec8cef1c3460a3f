"""What deciding costs for a customer with a long history: 0, 1,000 and 100,000 messages in the
dedupe window. The policy allows 1,500 per customer (about the most a state within one changelog
record can remember with the other limits at their defaults): at 1,000 every probe is a full
decision against that history; at 100,000 the customer is at the limit and probes are refused.
Each probe's state is then written as the worker writes it, from the bytes of the state before."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import NamedTuple

from app.clock import now_ms
from app.codecs.state import pack_state
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


class HistoryCosts(NamedTuple):
    decide_us: dict[str, float]  # by history size: one more decision
    write_us: dict[str, float]  # its state's bytes, packed from the state before


def costs_by_history(histories: tuple[int, ...] = HISTORIES, probes: int = 2000) -> HistoryCosts:
    """Per history size: microseconds to decide one more candidate for that customer, and to
    pack the state that decision leaves."""
    default, clock = load_policy(), now_ms()
    policy = replace(default, limits=replace(default.limits, max_messages_per_customer=LIMIT))
    decide, write = {}, {}
    with collector_for_deciding(), collector_off():  # as the worker decides a batch
        for size in histories:
            state = _customer_with(size, clock, policy)
            started = time.perf_counter()
            after = []
            for i in range(probes):
                category = Category.PROMO if i % 2 else Category.SERVICE
                probe = _candidate(f"probe-{i}", category, clock)
                after.append(apply_record(state, probe, clock, policy).state)
            decide[str(size)] = round((time.perf_counter() - started) * 1e6 / probes, 2)
            before = pack_state(state)
            started = time.perf_counter()
            for next_state in after:
                pack_state(next_state or state, before)
            write[str(size)] = round((time.perf_counter() - started) * 1e6 / probes, 2)
    return HistoryCosts(decide, write)


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
