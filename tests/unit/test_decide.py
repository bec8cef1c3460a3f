"""Every rule of the core, one scenario per row."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.policy.decide import decision_time
from app.policy.engine import apply_record
from app.policy.history import Expiring, SendLog
from app.policy.model import (
    HOUR,
    MINUTE,
    Audience,
    Category,
    ConsentWord,
    CustomerState,
    Outcome,
    Urgency,
)
from app.policy.rules import CapRule, QuietHours
from tests.builders import (
    T0,
    at,
    candidate,
    decide,
    default_policy,
    event,
    on_event,
    profile,
    release_due,
    state,
)

POLICY = default_policy()


def with_sends(s: CustomerState, *sends: tuple[float, str, Category]) -> CustomerState:
    return replace(s, sends=SendLog.of((at(h), ch, cat.value) for h, ch, cat in sends))


def with_dedupe(s: CustomerState, key: str, hours: float, message_id: str) -> CustomerState:
    return replace(s, dedupe=Expiring.of([(key, at(hours), message_id)]))


PROMO = Category.PROMO
SERVICE = Category.SERVICE

# (name, state, candidate, now, outcome, channel, reasons)
CASES = [
    (
        "plain promo goes out on its first channel",
        state(),
        candidate(),
        T0,
        Outcome.SENT,
        "email",
        (),
    ),
    (
        "no consent on the first channel falls back to the next",
        state(channels=("sms",)),
        candidate(channels=("email", "sms")),
        T0,
        Outcome.SENT,
        "sms",
        ("email:no_consent",),
    ),
    (
        "consented but unreachable is ruled out",
        replace(state(), profile=profile(reachable={"email": False, "sms": True})),
        candidate(channels=("email", "sms")),
        T0,
        Outcome.SENT,
        "sms",
        ("email:unreachable",),
    ),
    (
        "no usable channel at all is suppressed with every reason",
        state(channels=()),
        candidate(channels=("email", "push")),
        T0,
        Outcome.SUPPRESSED,
        None,
        ("email:no_consent", "push:no_consent"),
    ),
    (
        "two promos in 24h fill the cap",
        with_sends(state(), (-5, "email", PROMO), (-1, "sms", PROMO)),
        candidate(),
        T0,
        Outcome.SUPPRESSED,
        None,
        ("cap:rolling_24h",),
    ),
    (
        "a send 24h ago has left the rolling window",
        with_sends(state(), (-24, "email", PROMO), (-1, "sms", PROMO)),
        candidate(),
        T0,
        Outcome.SENT,
        "email",
        (),
    ),
    (
        "service messages count toward the promo cap",
        with_sends(state(), (-5, "email", SERVICE), (-1, "sms", SERVICE)),
        candidate(),
        T0,
        Outcome.SUPPRESSED,
        None,
        ("cap:rolling_24h",),
    ),
    (
        "service messages bypass the cap",
        with_sends(state(), (-5, "email", PROMO), (-1, "sms", PROMO)),
        candidate(category=SERVICE),
        T0,
        Outcome.SENT,
        "email",
        (),
    ),
    (
        "five promos in seven days fill the weekly cap",
        with_sends(state(), *((-24 * d - 1, "email", PROMO) for d in range(1, 6))),
        candidate(),
        T0,
        Outcome.SUPPRESSED,
        None,
        ("cap:rolling_7d",),
    ),
    (
        "expired before its decision",
        state(),
        candidate(expires_at=at(-1)),
        T0,
        Outcome.EXPIRED,
        None,
        ("expired",),
    ),
    (
        "a dedupe key already sent is deduplicated",
        with_dedupe(state(), "loan-42", -2, "m0"),
        candidate(dedupe_key="loan-42"),
        T0,
        Outcome.DEDUPLICATED,
        None,
        ("duplicate_of:m0",),
    ),
    (
        "a dedupe key older than the window is forgotten",
        with_dedupe(state(), "loan-42", -24 * 8, "m0"),
        candidate(dedupe_key="loan-42"),
        T0,
        Outcome.SENT,
        "email",
        (),
    ),
    (
        "quiet hours hold a normal message until 09:00 local",
        state(timezone="Europe/Berlin"),
        candidate(urgency=Urgency.NORMAL),
        at(10),  # 23:00 Berlin
        Outcome.DEFERRED,
        None,
        ("quiet_hours",),
    ),
    (
        "quiet hours never hold an immediate message",
        state(timezone="Europe/Berlin"),
        candidate(urgency=Urgency.IMMEDIATE),
        at(10),
        Outcome.SENT,
        "email",
        (),
    ),
    (
        "outside quiet hours a normal message goes at once",
        state(timezone="Europe/Berlin"),
        candidate(urgency=Urgency.NORMAL),
        T0,
        Outcome.SENT,
        "email",
        (),
    ),
    (
        "a category opt-out suppresses every channel",
        replace(state(), consent={"category:promo": ConsentWord(at(-1), "e0", False)}),
        candidate(),
        T0,
        Outcome.SUPPRESSED,
        None,
        ("opted_out:promo",),
    ),
]


@pytest.mark.parametrize(
    "name,before,cand,now,outcome,channel,reasons", CASES, ids=[c[0] for c in CASES]
)
def test_rule(name, before, cand, now, outcome, channel, reasons):
    step = decide(before, cand, now, POLICY)
    [decision] = step.decisions
    assert (decision.outcome, decision.channel, decision.reasons) == (outcome, channel, reasons)
    assert decision.policy_version == POLICY.version
    assert len(step.outbound) == (1 if outcome is Outcome.SENT else 0)


def test_deferred_candidate_is_released_at_nine_local_then_sent():
    held = decide(
        state(timezone="Europe/Berlin"), candidate(urgency=Urgency.NORMAL), at(10), POLICY
    )
    [deferred] = held.decisions
    nine_berlin = at(20)  # 08:00 UTC next day
    assert deferred.release_at == nine_berlin
    assert release_due(held.state, nine_berlin - 1, POLICY).decisions == ()
    released = release_due(held.state, nine_berlin + MINUTE, POLICY)
    [final] = released.decisions
    assert (final.outcome, final.decided_at) == (Outcome.SENT, nine_berlin)
    assert released.state.pending == ()
    assert released.outbound[0].sent_at == nine_berlin


def test_held_candidate_expires_if_expiry_comes_first():
    cand = candidate(urgency=Urgency.NORMAL, expires_at=at(13))  # 02:00 Berlin
    held = decide(state(timezone="Europe/Berlin"), cand, at(10), POLICY)
    [final] = release_due(held.state, at(30), POLICY).decisions
    assert (final.outcome, final.decided_at, final.reasons) == (
        Outcome.EXPIRED,
        at(13),
        ("expired",),
    )


def test_release_ranks_personal_before_mass_for_the_last_cap_slot():
    s = state(timezone="Europe/Berlin")
    s = decide(s, candidate("promo", urgency=Urgency.NORMAL), at(10), POLICY).state
    s = decide(
        s, candidate("promo2", urgency=Urgency.NORMAL, audience=Audience.PERSONAL), at(10.5), POLICY
    ).state
    s = with_sends(s, (19, "email", PROMO))  # one promo went out at 08:00 Berlin
    released = release_due(s, at(21), POLICY)
    outcomes = {d.message_id: d.outcome for d in released.decisions}
    # personal beats mass for the one slot left in the rolling 24h cap
    assert outcomes == {"promo2": Outcome.SENT, "promo": Outcome.SUPPRESSED}


def test_arbitration_window_lets_the_better_candidate_win():
    policy = replace(POLICY, arbitration_window_ms=MINUTE)
    s = with_sends(state(), (-5, "email", PROMO))
    s = decide(s, candidate("mass", urgency=Urgency.NORMAL), T0, policy).state
    s = decide(
        s,
        candidate(
            "personal", urgency=Urgency.NORMAL, audience=Audience.PERSONAL, created_at=T0 + 10_000
        ),
        T0 + 10_000,
        policy,
    ).state
    assert {p.release_at for p in s.pending} == {T0 + MINUTE}  # one arbitration round
    released = release_due(s, T0 + MINUTE, policy)
    assert {d.message_id: d.outcome for d in released.decisions} == {
        "personal": Outcome.SENT,
        "mass": Outcome.SUPPRESSED,
    }


def test_redelivered_candidate_gets_no_second_decision():
    first = decide(state(), candidate(), T0, POLICY)
    again = decide(first.state, candidate(), T0 + MINUTE, POLICY)
    assert again.decisions == () and again.outbound == ()
    assert again.state == first.state


def test_deciding_releases_what_is_due_first():
    held = decide(
        state(timezone="Europe/Berlin"), candidate("night", urgency=Urgency.NORMAL), at(10), POLICY
    )
    step = decide(held.state, candidate("morning"), at(22), POLICY)
    assert [d.message_id for d in step.decisions] == ["night", "morning"]


def test_per_channel_calendar_cap_falls_back_to_another_channel():
    sms_daily = CapRule("sms_daily", 1, None, "day", frozenset({"sms"}), frozenset())
    policy = replace(POLICY, caps=(*POLICY.caps, sms_daily))
    s = with_sends(state(), (-3, "sms", PROMO))
    [decision] = decide(s, candidate(channels=("sms", "email")), T0, policy).decisions
    assert (decision.channel, decision.reasons) == ("email", ("sms:cap:sms_daily",))


def test_calendar_day_is_the_customers_local_day():
    daily = CapRule("daily", 1, None, "day", frozenset(), frozenset())
    policy = replace(POLICY, caps=(daily,))
    # Tokyo is UTC+9: 12:00 UTC is 21:00 local, and 16:00 UTC is 01:00 the next local day.
    s = with_sends(state(timezone="Asia/Tokyo"), (0, "email", PROMO))
    assert (
        decide(s, candidate(created_at=at(2)), at(2), policy).decisions[0].outcome
        is Outcome.SUPPRESSED
    )
    assert (
        decide(s, candidate(created_at=at(4)), at(4), policy).decisions[0].outcome is Outcome.SENT
    )


def test_unsubscribe_event_removes_consent_for_that_channel():
    s = on_event(state(), event(type="unsubscribed", channel="email"), T0, POLICY).state
    [decision] = decide(s, candidate(channels=("email", "sms")), T0, POLICY).decisions
    assert (decision.channel, decision.reasons) == ("sms", ("email:no_consent",))


def test_category_unsubscribe_and_resubscribe():
    s = on_event(
        state(),
        event(type="unsubscribed", channel=None, attributes={"category": "promo"}),
        T0,
        POLICY,
    ).state
    assert decide(s, candidate(), T0, POLICY).decisions[0].outcome is Outcome.SUPPRESSED
    s = on_event(
        s,
        event("e2", type="resubscribed", channel=None, attributes={"category": "promo"}),
        T0,
        POLICY,
    ).state
    assert decide(s, candidate(), T0, POLICY).decisions[0].outcome is Outcome.SENT


def test_outbound_carries_recent_context_newest_first_in_summary():
    s = on_event(state(), event("e1", type="email_opened", occurred_at=at(-2)), T0, POLICY).state
    s = on_event(
        s, event("e2", type="offer_clicked", channel=None, occurred_at=at(-0.5)), T0, POLICY
    ).state
    [message] = decide(s, candidate(category=SERVICE), T0, POLICY).outbound
    assert [c.type for c in message.context] == ["email_opened", "offer_clicked"]
    assert message.context_summary == "offer_clicked 30m ago; email_opened (email) 2h ago"


def test_pending_limit_suppresses_beyond_it():
    policy = replace(POLICY, limits=replace(POLICY.limits, max_pending_per_customer=1))
    s = state(timezone="Europe/Berlin")
    s = decide(s, candidate("a", urgency=Urgency.NORMAL), at(10), policy).state
    [decision] = decide(s, candidate("b", urgency=Urgency.NORMAL), at(10), policy).decisions
    assert decision.reasons == ("pending_limit",)


def test_suppressed_candidate_gives_its_dedupe_key_back():
    s = state(channels=())
    s = decide(s, candidate("a", dedupe_key="k"), T0, POLICY).state
    s = replace(s, profile=profile())
    assert (
        decide(s, candidate("b", dedupe_key="k"), T0, POLICY).decisions[0].outcome is Outcome.SENT
    )


def test_a_logged_decision_wins_over_deciding_again():
    """After a crash a candidate takes the decision already published, even where deciding now
    would say otherwise (the policy changed, or the clock moved past the record's time)."""
    logged = decide(state(channels=()), candidate(), T0, POLICY).decisions[0]
    assert logged.outcome is Outcome.SUPPRESSED  # and today it would be sent:
    assert decide(state(), candidate(), T0, POLICY).decisions[0].outcome is Outcome.SENT
    adopted = apply_record(state(), candidate(), T0, POLICY, {"m1": logged})
    assert adopted.decisions == (logged,) and adopted.outbound == ()
    assert adopted.state is not None and "m1" in adopted.state.decided
    sent = decide(state(), candidate(), T0, POLICY).decisions[0]
    taken = apply_record(state(), candidate(), T0 + 60_000, POLICY, {"m1": sent})
    assert taken.state is not None and [s[0] for s in taken.state.sends.sends()] == [T0]


def test_old_history_is_forgotten():
    s = decide(state(), candidate("old"), T0, POLICY).state
    later = decide(s, candidate("new", created_at=at(24 * 30)), at(24 * 30), POLICY).state
    assert "old" not in later.decided and [x[0] for x in later.sends.sends()] == [at(24 * 30)]


@pytest.mark.parametrize(
    "record,clock,expected",
    [
        (T0, T0 + 5 * MINUTE, T0),  # on time: decided as of its own time
        (T0, T0 + 2 * HOUR, T0 + 2 * HOUR),  # very late (an outage): decided at the clock
        (T0 + 2 * MINUTE, T0, T0),  # from a clock running ahead: decided at the clock
    ],
)
def test_decision_time(record, clock, expected):
    assert decision_time(record, clock) == expected


def test_quiet_hours_window_within_one_day():
    policy = replace(
        POLICY, quiet_hours=QuietHours(13 * 3600, 14 * 3600, frozenset({Urgency.NORMAL}))
    )
    assert (
        decide(state(), candidate(urgency=Urgency.NORMAL), at(1.5), policy).decisions[0].outcome
        is Outcome.DEFERRED
    )
    assert (
        decide(state(), candidate(urgency=Urgency.NORMAL), at(2), policy).decisions[0].outcome
        is Outcome.SENT
    )


def test_release_across_a_daylight_saving_change():
    # Night of 2026-10-24/25: Berlin leaves summer time; 09:00 local is 08:00 UTC afterwards.
    from datetime import UTC, datetime

    evening = int(datetime(2026, 10, 24, 21, 30, tzinfo=UTC).timestamp() * 1000)
    held = decide(
        state(timezone="Europe/Berlin"),
        candidate(urgency=Urgency.NORMAL, created_at=evening),
        evening,
        POLICY,
    )
    nine = int(datetime(2026, 10, 25, 8, 0, tzinfo=UTC).timestamp() * 1000)
    assert held.decisions[0].release_at == nine
