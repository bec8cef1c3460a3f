"""Records that decode but cannot be decided are rejected with a reason (dead letters)."""

from __future__ import annotations

import pytest

from app.policy.engine import ProfileDeleted, apply_record
from app.policy.model import DAY, HOUR, CustomerState, Outcome, Urgency
from tests.builders import T0, candidate, default_policy, event, profile, state

POLICY = default_policy()


@pytest.mark.parametrize(
    "record,current,problem",
    [
        (candidate("m" * 129), state(), "message_id is longer than 128 bytes"),
        (candidate(dedupe_key="é" * 65), state(), "dedupe_key is longer than 128 bytes"),
        (event(event_id="e" * 200), state(), "event_id is longer than 128 bytes"),
        (event(type="t" * 65), state(), "type is longer than 64 bytes"),
        (candidate(channels=()), state(), "channels is empty"),
        (candidate(channels=("email", "email")), state(), "lists a channel twice"),
        (candidate(channels=("fax",)), state(), "unknown channel 'fax'"),
        (candidate(expires_at=T0 - 1), state(), "expires_at is before created_at"),
        (candidate(created_at=T0 - 400 * DAY), state(), "more than a year before now"),
        (candidate(created_at=T0 + 2 * DAY), state(), "more than a day in the future"),
        (event(channel="fax"), state(), "unknown channel 'fax'"),
        (event(occurred_at=0), state(), "more than a year before now"),
        (profile(timezone="Mars/Olympus"), None, "not an IANA time zone"),
        (profile(consents={"fax": True}), None, "consents names unknown channel 'fax'"),
    ],
)
def test_rejected_with_a_reason(record, current, problem):
    applied = apply_record(current, record, T0, POLICY)
    assert applied.problem is not None and problem in applied.problem
    assert applied.state == current and applied.decisions == ()


def test_profile_tombstone_forgets_the_customer():
    assert apply_record(state(), ProfileDeleted("c1"), T0, POLICY).state is None


def test_profile_tombstone_cancels_held_candidates():
    night = T0 + 22 * HOUR - T0 % DAY  # 22:00 UTC: quiet hours hold the candidate
    held = apply_record(state(), candidate(urgency=Urgency.NORMAL, created_at=night), night, POLICY)
    assert [d.outcome for d in held.decisions] == [Outcome.DEFERRED]
    gone = apply_record(held.state, ProfileDeleted("c1"), night + HOUR, POLICY)
    assert gone.state is None
    assert [(d.message_id, d.outcome, d.reasons) for d in gone.decisions] == [
        ("m1", Outcome.CANCELLED, ("customer_deleted",))
    ]


def test_events_before_the_profile_are_kept_as_context():
    applied = apply_record(None, event(), T0, POLICY)
    assert applied.problem is None and applied.state is not None and applied.state.recent


def test_a_candidate_for_a_customer_without_a_profile_is_decided_not_dead_lettered():
    applied = apply_record(CustomerState("c1"), candidate(), T0, POLICY)
    assert applied.problem is None
    [decision] = applied.decisions
    assert (decision.outcome, decision.reasons) == (Outcome.SUPPRESSED, ("unknown_customer",))
    assert applied.state is not None and "m1" in applied.state.decided  # decided once only
    assert apply_record(applied.state, candidate(), T0, POLICY).decisions == ()
