"""Every per-customer collection is bounded, and a state always fits in one changelog record."""

from __future__ import annotations

from dataclasses import replace
from math import ceil

import pytest

from app.codecs.state import encode_state
from app.policy.bounds import (
    CHANGELOG_RECORD_LIMIT,
    MAX_ID_BYTES,
    MAX_REMEMBERED_ATTRIBUTES_BYTES,
    candidate_bytes,
    worst_case_state_bytes,
)
from app.policy.engine import apply_record
from app.policy.history import Expiring, SendLog
from app.policy.model import (
    CHANNELS,
    DAY,
    Category,
    ConsentWord,
    Contact,
    CustomerEvent,
    CustomerState,
    Inbound,
    Outcome,
    Pending,
    Score,
    Sent,
    Urgency,
)
from app.policy.policy_file import PolicyError, parse_policy
from tests.builders import T0, candidate, default_policy, event, profile, state

POLICY = default_policy()
LONG = "𝔪" * (MAX_ID_BYTES // 4)  # 128 bytes of UTF-8 in 32 characters


def long_id(i: int) -> str:
    tag = str(i)
    return tag + LONG[: (MAX_ID_BYTES - len(tag)) // 4] + "x" * ((MAX_ID_BYTES - len(tag)) % 4)


def fullest_state(policy) -> CustomerState:
    """A customer at every limit of the policy at once, with every text as long as allowed."""
    limits = policy.limits
    messages = limits.max_messages_per_customer
    windows = ceil((policy.history_ms + 2 * DAY) / policy.dedupe_window_ms)
    scopes = [*CHANNELS, *(f"category:{c}" for c in Category)]
    scopes += [f"{ch}/{c}" for ch in CHANNELS for c in Category]
    held = candidate(long_id(0), long_id(0), dedupe_key=long_id(1), template=long_id(2))
    room = limits.max_held_bytes // limits.max_pending_per_customer - candidate_bytes(held)
    held = replace(held, payload={"blob": "x" * max(room - 20, 0)})
    attributes = {"k": "v" * (MAX_REMEMBERED_ATTRIBUTES_BYTES - 20)}
    return CustomerState(
        customer_id=long_id(0),
        profile=profile(
            long_id(0),
            "America/Argentina/ComodRivadavia",
            CHANNELS,
            segment="s" * 64,
            attributes=attributes,
        ),
        consent={s: ConsentWord(T0, long_id(3), False) for s in scopes},
        sends=SendLog.of(
            (T0 + i, "messenger", "transactional") for i in range(messages * (windows + 1))
        ),
        decided=Expiring.of((long_id(i), T0, None) for i in range(messages)),
        dedupe=Expiring.of((long_id(i), T0, long_id(i + 1)) for i in range(messages)),
        pending=tuple(
            Pending(replace(held, message_id=long_id(i)), T0 + DAY, "quiet_hours")
            for i in range(limits.max_pending_per_customer)
        ),
        recent=tuple(
            CustomerEvent(long_id(i), long_id(0), "t" * 64, T0, "messenger", attributes)
            for i in range(limits.context_events)
        ),
        engagement={c: Score(-1.2345678, T0) for c in CHANNELS},
        awaiting=tuple(  # as many as held candidates, of their size (fallback_rules.py)
            Sent(replace(held, message_id=long_id(i)), "messenger", T0, T0, CHANNELS, CHANNELS)
            for i in range(policy.channel_rules.max_awaiting)
        ),
        detractor_until=T0,
        hours={h: Score(-1.2345678, T0) for h in range(24)},
        last_contact=Contact("messenger", "j" * 64, T0),
        last_inbound=Inbound(long_id(4), "t" * 64, "messenger", T0),
    )


@pytest.mark.parametrize("messages", [1000, 1500])
def test_the_fullest_state_a_policy_allows_fits_in_a_changelog_record(messages):
    policy = replace(POLICY, limits=replace(POLICY.limits, max_messages_per_customer=messages))
    size = len(encode_state(fullest_state(policy)))
    assert size <= worst_case_state_bytes(policy) <= CHANGELOG_RECORD_LIMIT
    assert size > worst_case_state_bytes(policy) * 0.9, "the estimate should stay close"


def test_a_policy_whose_limits_allow_a_larger_state_is_refused():
    text = 'version = "big"\n[limits]\nmax_messages_per_customer = 5000\n'
    with pytest.raises(PolicyError, match=r"big.*:3: limits.max_messages_per_customer: .* bytes"):
        parse_policy(text, "big")


def test_a_customer_at_the_message_limit_gets_no_more_and_the_state_stops_growing():
    policy = replace(POLICY, limits=replace(POLICY.limits, max_messages_per_customer=10))
    current = state()
    for i in range(10):
        current = apply_record(
            current, candidate(f"m{i}", category=Category.SERVICE), T0, policy
        ).state
    over = apply_record(current, candidate("m10", category=Category.SERVICE), T0, policy)
    [decision] = over.decisions
    assert (decision.outcome, decision.reasons) == (Outcome.SUPPRESSED, ("customer_limit",))
    assert over.outbound == () and over.state == current
    later = T0 + POLICY.dedupe_window_ms + 2 * DAY  # the window has moved on: room again
    again = apply_record(current, candidate("m11", created_at=later), later, policy)
    assert again.decisions[0].outcome is Outcome.SENT


def test_held_candidates_are_bounded_by_their_size_too():
    policy = replace(POLICY, limits=replace(POLICY.limits, max_held_bytes=4096))
    night = T0 + 10 * 3_600_000  # 22:00 UTC
    big = {"blob": "x" * 3000}
    current = state()
    first = apply_record(
        current,
        candidate("a", urgency=Urgency.NORMAL, created_at=night, payload=big),
        night,
        policy,
    )
    assert first.decisions[0].outcome is Outcome.DEFERRED
    second = apply_record(
        first.state,
        candidate("b", urgency=Urgency.NORMAL, created_at=night, payload=big),
        night,
        policy,
    )
    assert second.decisions[0].reasons == ("pending_limit",)


def test_a_recent_event_with_large_attributes_is_remembered_without_them():
    large = {"note": "x" * (MAX_REMEMBERED_ATTRIBUTES_BYTES + 1)}
    remembered = apply_record(state(), event(attributes=large), T0, POLICY).state
    assert remembered is not None and remembered.recent[0].attributes == {}
    small = apply_record(state(), event(attributes={"offer": "m7"}), T0, POLICY).state
    assert small is not None and small.recent[0].attributes == {"offer": "m7"}


def test_expiring_keys_are_dropped_a_whole_day_at_a_time():
    keys = Expiring.of([("a", T0 - 3 * DAY, None), ("b", T0, None)])
    assert keys.forget_before(T0 - 3 * DAY) is keys  # nothing stale: the same value back
    kept = keys.forget_before(T0 - DAY)
    assert "a" not in kept and "b" in kept and len(kept) == 1
    moved = Expiring.of([("a", T0 - 3 * DAY, None)]).put("a", T0, None)  # re-filed later
    assert "a" in moved.forget_before(T0 - DAY)
    assert keys.remove("b").forget_before(T0 + 2 * DAY) == Expiring()


def test_the_send_log_counts_windows_and_keeps_late_sends_in_order():
    log = SendLog().add("email", "promo", T0).add("sms", "promo", T0 + 10)
    log = log.add("email", "promo", T0 - 5)  # out of time order
    classes = frozenset({"email/promo", "sms/promo"})
    assert log.count_between(classes, T0 - 5, T0 + 11) == 3
    assert log.count_between(frozenset({"email/promo"}), T0 - 4, T0 + 11) == 1
    assert log.times_between(classes, T0 - 10, T0 + 20) == [T0 - 5, T0, T0 + 10]
    assert [s[0] for s in log.sends()] == [T0 - 5, T0, T0 + 10] and len(log) == 3
