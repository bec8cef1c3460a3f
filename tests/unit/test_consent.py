"""Consent is the customer's word over time, kept apart from the profile upstream sends."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.policy.consent import channel_refusal, is_reachable
from app.policy.engine import apply_record
from app.policy.model import Category, CustomerEvent, CustomerProfile, CustomerState, Outcome
from tests.builders import T0, candidate, default_policy, event, profile

POLICY = default_policy()
PROMO, SERVICE = Category.PROMO, Category.SERVICE


def applied(state, *records, clock=T0):
    for record in records:
        state = apply_record(state, record, clock, POLICY).state
    return state


def unsubscribe(event_id="u1", at=T0, channel="email", **attributes):
    return event(
        event_id, type="unsubscribed", channel=channel, occurred_at=at, attributes=attributes
    )


def resubscribe(event_id="r1", at=T0, channel="email", **attributes):
    return event(
        event_id, type="resubscribed", channel=channel, occurred_at=at, attributes=attributes
    )


def refusal(state, channel="email", category=PROMO):
    return channel_refusal(state, state.profile, channel, category, POLICY)


def test_a_profile_update_after_an_unsubscribe_does_not_undo_it():
    state = applied(None, profile(), unsubscribe(), profile())  # upstream still says email: true
    assert refusal(state) == "email:no_consent"
    [decision] = apply_record(state, candidate(channels=("email",)), T0, POLICY).decisions
    assert (decision.outcome, decision.reasons) == (Outcome.SUPPRESSED, ("email:no_consent",))


def test_an_unsubscribe_before_the_first_profile_is_kept():
    state = applied(None, unsubscribe(), profile())
    assert refusal(state) == "email:no_consent"


def test_a_late_resubscribe_older_than_the_unsubscribe_changes_nothing():
    state = applied(None, profile(), unsubscribe(at=T0), resubscribe(at=T0 - 60_000))
    assert refusal(state) == "email:no_consent"
    state = applied(state, resubscribe("r2", at=T0 + 60_000))
    assert refusal(state) is None


def test_equal_times_are_ordered_by_event_id():
    state = applied(None, profile(), resubscribe("b", at=T0), unsubscribe("a", at=T0))
    assert refusal(state) is None  # "b" is the later word


def test_a_category_on_one_channel_is_its_own_scope():
    state = applied(None, profile(), unsubscribe(channel="sms", category="promo"))
    assert refusal(state, "sms", PROMO) == "sms:no_consent"
    assert refusal(state, "sms", SERVICE) is None
    assert refusal(state, "email", PROMO) is None


@pytest.mark.parametrize(
    "consents,category,expected",
    [
        ({}, PROMO, "email:no_consent"),  # promo is opt-in: needs a yes
        ({}, SERVICE, None),  # service is opt-out: allowed unless the customer said no
        ({"email": False}, SERVICE, "email:no_consent"),
        ({"email": True}, PROMO, None),
    ],
)
def test_category_consent_defaults(consents, category, expected):
    state = CustomerState("c1", CustomerProfile("c1", "UTC", consents, {"email": True}))
    assert refusal(state, "email", category) == expected


@pytest.mark.parametrize(
    "reachable,channel,expected",
    [
        ({}, "email", True),
        ({}, "messenger", True),
        ({}, "sms", False),
        ({}, "push", False),
        ({"email": False}, "email", False),
        ({"sms": True}, "sms", True),
    ],
)
def test_reachability_defaults(reachable, channel, expected):
    assert is_reachable(CustomerProfile("c1", "UTC", {}, reachable), channel, POLICY) is expected


# -- any order of arrival gives the same consent as the events sorted by their own time ---------

SCOPES = [("email", None), ("sms", None), (None, "promo"), ("sms", "promo")]


@st.composite
def consent_history(draw):
    """Profile updates (in their own order) and (un)subscribe events, interleaved at random."""
    profiles = [
        profile(consents={c: draw(st.booleans()) for c in ("email", "sms")})
        for _ in range(draw(st.integers(0, 3)))
    ]
    events = []
    for i in range(draw(st.integers(0, 8))):
        channel, category = draw(st.sampled_from(SCOPES))
        kind = draw(st.sampled_from(["unsubscribed", "resubscribed"]))
        at = T0 + draw(st.integers(-5, 5)) * 60_000
        attributes = {"category": category} if category else {}
        events.append(CustomerEvent(f"e{i}", "c1", kind, at, channel, attributes))
    arrival = draw(st.permutations(events))
    slots = sorted(
        draw(st.lists(st.integers(0, len(arrival)), min_size=len(profiles), max_size=len(profiles)))
    )
    mixed = list(arrival)
    for offset, (slot, update) in enumerate(zip(slots, profiles, strict=True)):
        mixed.insert(slot + offset, update)
    return profiles, events, mixed


def effective(state):
    state = state or CustomerState("c1")
    with_profile = replace(state, profile=state.profile or profile(consents={}))
    return {
        (channel, category): refusal(with_profile, channel, category)
        for channel in ("email", "sms")
        for category in (PROMO, SERVICE)
    } | {"opted_out": state.opted_out_categories}


@given(consent_history())
@settings(max_examples=300, deadline=None)
def test_consent_does_not_depend_on_the_order_events_arrive_in(history):
    profiles, events, arrived = history
    in_time_order = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
    expected = applied(None, *profiles, *in_time_order)
    assert effective(applied(None, *arrived)) == effective(expected)
