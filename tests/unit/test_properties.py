"""Properties of the core that must hold for any traffic, checked on generated traffic."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from app.codecs.state import decode_state, encode_state, pack_state
from app.policy.engine import apply_record
from app.policy.localtime import calendar_period
from app.policy.model import (
    DAY,
    FINAL_OUTCOMES,
    HOUR,
    MINUTE,
    Audience,
    Candidate,
    Category,
    CustomerEvent,
    Outcome,
    Urgency,
)
from app.policy.rules import CapRule, Policy
from app.simulate import Replay, replay
from tests.builders import ALL, T0, default_policy, profile

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
CUSTOMERS = ["c1", "c2", "c3"]


@st.composite
def traffic(draw):
    """Profiles first, then events and candidates at rising times with some jitter."""
    records = [
        profile(
            c,
            draw(st.sampled_from(ZONES)),
            tuple(draw(st.lists(st.sampled_from(ALL), unique=True, min_size=1))),
        )
        for c in CUSTOMERS
    ]
    clock = T0
    for i in range(draw(st.integers(1, 60))):
        clock += draw(st.integers(0, 6 * HOUR))
        jitter = draw(st.integers(-10 * MINUTE, 10 * MINUTE))
        customer = draw(st.sampled_from(CUSTOMERS))
        if draw(st.integers(0, 5)) == 0:
            kind = draw(st.sampled_from(["email_opened", "unsubscribed", "resubscribed"]))
            records.append(
                CustomerEvent(f"e{i}", customer, kind, clock + jitter, draw(st.sampled_from(ALL)))
            )
            continue
        message_id = f"{customer}-m{draw(st.integers(0, i))}"  # sometimes a redelivered one
        records.append(
            Candidate(
                message_id=message_id,
                customer_id=customer,
                category=draw(st.sampled_from(list(Category))),
                audience=draw(st.sampled_from(list(Audience))),
                channels=tuple(draw(st.lists(st.sampled_from(ALL), unique=True, min_size=1))),
                urgency=draw(st.sampled_from(list(Urgency))),
                created_at=clock + jitter,
                template="t",
                priority=draw(st.none() | st.integers(-3, 3)),
                dedupe_key=draw(st.none() | st.sampled_from(["k1", "k2"])),
                expires_at=draw(st.none() | st.integers(clock + jitter, clock + jitter + 2 * DAY)),
            )
        )
    return records


@st.composite
def policies(draw):
    caps = [
        CapRule(
            "rolling",
            draw(st.integers(0, 3)),
            draw(st.sampled_from([HOUR, 6 * HOUR, DAY])),
            None,
            frozenset(),
            frozenset(),
        ),
        CapRule("sms_daily", draw(st.integers(0, 2)), None, "day", frozenset({"sms"}), frozenset()),
        CapRule(
            "promo_week",
            draw(st.integers(1, 4)),
            None,
            "week",
            frozenset(),
            frozenset({Category.PROMO}),
        ),
    ]
    return replace(
        default_policy(), caps=tuple(caps), arbitration_window_ms=draw(st.sampled_from([0, MINUTE]))
    )


def run(records, policy: Policy):
    return replay(list(enumerate(records, 1)), policy, until=whole_until(records))


def capped_sends(result, policy: Policy):
    sends = defaultdict(list)
    for message in result.outbound:
        if not policy.categories[message.category].bypass_caps:
            sends[message.customer_id].append(message)
    return sends


@given(traffic(), policies())
@settings(max_examples=150, deadline=None)
def test_no_customer_ever_exceeds_a_cap_in_any_window(records, policy):
    result = run(records, policy)
    for decision in result.decisions:  # what the record says it saw agrees
        if decision.outcome is Outcome.SENT:
            assert all(c.count < c.limit for c in decision.caps), decision
    zones = {r.customer_id: r.timezone for r in records if hasattr(r, "timezone")}
    for customer, messages in capped_sends(result, policy).items():
        for cap in policy.caps:
            times = sorted(m.sent_at for m in messages if cap.counts(m.channel, m.category))
            if cap.window_ms:
                for start in times:  # the busiest window starts at a send
                    assert sum(start <= t < start + cap.window_ms for t in times) <= cap.limit
            else:
                periods = [calendar_period(t, zones[customer], cap.calendar) for t in times]
                assert all(periods.count(p) <= cap.limit for p in periods)


@given(traffic(), policies())
@settings(max_examples=150, deadline=None)
def test_every_candidate_gets_exactly_one_final_decision(records, policy):
    result = run(records, policy)
    message_ids = {r.message_id for r in records if isinstance(r, Candidate)}
    finals = defaultdict(int)
    deferred_after_final = []
    for decision in result.decisions:
        if decision.outcome in FINAL_OUTCOMES:
            finals[decision.message_id] += 1
        elif finals[decision.message_id]:
            deferred_after_final.append(decision.message_id)
    assert set(finals) == message_ids
    assert all(n == 1 for n in finals.values())
    assert deferred_after_final == []
    sent = [m.message_id for m in result.outbound]
    assert len(sent) == len(set(sent))
    assert set(sent) == {d.message_id for d in result.decisions if d.outcome is Outcome.SENT}


@given(traffic(), policies(), st.data())
@settings(max_examples=100, deadline=None)
def test_stopping_and_resuming_from_stored_state_changes_nothing(records, policy, data):
    """Like a worker restarting from its table: encode every state, decode, carry on."""
    split = data.draw(st.integers(0, len(records)))
    whole = run(records, policy)
    head = replay(list(enumerate(records[:split], 1)), policy)
    restored = Replay(
        states={c: decode_state(encode_state(s)) for c, s in head.states.items()}, clock=head.clock
    )
    assert restored.states == head.states
    tail = replay(
        list(enumerate(records[split:], 1)), policy, until=whole_until(records), resume=restored
    )
    assert tail.states == whole.states
    assert by_customer(head.decisions + tail.decisions) == by_customer(whole.decisions)


@given(traffic(), policies())
@settings(max_examples=100, deadline=None)
def test_a_state_packed_from_the_one_before_it_is_packed_alike(records, policy):
    """A worker packs a customer's state from the bytes of the state before (codecs/state.py):
    the same bytes as packing it whole, whatever the core kept or changed."""
    packed, clock = {}, T0
    for record in records:
        clock = max(clock, getattr(record, "created_at", getattr(record, "occurred_at", clock)))
        before = packed.pop(record.customer_id, None)
        state = apply_record(before.state if before else None, record, clock, policy).state
        if state is not None:
            again = pack_state(state, before)
            assert again.data == pack_state(state).data == encode_state(state)
            assert decode_state(again.data) == state
            packed[record.customer_id] = again


def whole_until(records):
    return max((getattr(r, "created_at", 0) for r in records), default=T0) + 3 * DAY


def by_customer(decisions):
    grouped = defaultdict(list)
    for decision in decisions:
        grouped[decision.customer_id].append(decision)
    return grouped
