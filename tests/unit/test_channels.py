"""Channel choice that listens: the matrix, engagement, cost, fallback, feedback and signals."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from app.codecs.state import decode_state, encode_state
from app.policy.engine import Due, Input, apply_record
from app.policy.model import DAY, HOUR, MINUTE, Category, CustomerEvent, Outcome, Urgency
from app.policy.policy_file import parse_policy
from app.simulate import Replay, replay
from tests.builders import T0, candidate, profile

POLICY_TEXT = """
version = "channels-test"

[channels]
channel_choice = "engagement"

[channels.push]
cost = 0.0
fallback_after = "15m"

[channels.sms]
cost = 0.04

[channels.email]
cost = 0.001

[[matrix]]
purpose = "code"
channels = ["sms"]

[[matrix]]
purpose = "reminder"
channels = ["push", "sms", "email"]

[[matrix]]
purpose = "reminder"
segment = "premium"
channels = ["call", "push"]

[[feedback.caps]]
name = "feedback_detractor"
limit = 1
window = "7d"
categories = ["promo"]

[[caps]]
name = "promo_week"
limit = 5
window = "7d"
categories = ["promo"]
"""
POLICY = parse_policy(POLICY_TEXT)
MATRIX_ONLY = parse_policy(POLICY_TEXT.replace('channel_choice = "engagement"', ""))


def run(records: list[Input], until: int | None = None, policy=POLICY) -> Replay:  # type: ignore[no-untyped-def]
    return replay(enumerate(records, 1), policy, until)


def feedback(n: int, kind: str, at: int, channel: str | None, **attributes: str) -> CustomerEvent:
    return CustomerEvent(f"f{n}", "c1", kind, at, channel, attributes)


def reminder(message_id: str = "m1", at: int = T0, **changes: object) -> Input:
    made = candidate(
        message_id, channels=(), purpose="reminder", category=Category.SERVICE, created_at=at
    )
    return replace(made, **changes)


def sends(result: Replay) -> list[tuple[str, str]]:
    return [(m.message_id, m.channel) for m in result.outbound]


# -- the matrix --------------------------------------------------------------------------------


def test_an_empty_channel_list_takes_the_purposes_row_of_the_matrix():
    result = run([profile(), reminder()], policy=MATRIX_ONLY)
    assert sends(result) == [("m1", "push")]


def test_a_segments_own_row_wins_over_the_general_one():
    result = run([profile(segment="premium"), reminder()], policy=MATRIX_ONLY)
    assert sends(result) == [("m1", "call")]


def test_a_purpose_without_a_row_is_suppressed_saying_so():
    result = run([profile(), reminder(purpose="mystery")])
    assert [(d.outcome, d.reasons) for d in result.decisions] == [
        (Outcome.SUPPRESSED, ("no_channel:mystery",))
    ]


def test_the_candidates_own_channels_win_over_the_matrix():
    result = run([profile(), reminder(channels=("email",))], policy=MATRIX_ONLY)
    assert sends(result) == [("m1", "email")]


def test_the_shipped_default_follows_the_missions_matrix():
    from app.policy.policy_file import load_policy

    rules = load_policy().channel_rules
    urgent = Urgency.IMMEDIATE
    assert rules.row_for("code", urgent, None).channels[0] == "sms"  # type: ignore[union-attr]
    assert rules.row_for("documents", urgent, None).channels[0] == "email"  # type: ignore[union-attr]
    assert rules.row_for("reminder", urgent, None).channels[0] == "push"  # type: ignore[union-attr]
    assert rules.row_for("closing", urgent, None).channels[0] == "call"  # type: ignore[union-attr]
    decision = rules.row_for("complex_decision", urgent, None)
    assert decision is not None and decision.channels[0] == "manager"


# -- engagement --------------------------------------------------------------------------------


def test_a_customer_who_reads_push_and_never_opens_email_gets_push():
    result = run(
        [
            profile(),
            feedback(1, "opened", T0 - 3 * DAY, "push"),
            feedback(2, "ignored", T0 - 2 * DAY, "email"),
            reminder(channels=("email", "push")),
        ]
    )
    assert sends(result) == [("m1", "push")]
    assert "channel:engagement:push>email" in result.decisions[0].reasons


def test_without_engagement_the_order_is_the_listed_one_or_the_cheaper_with_prefer_cheaper():
    assert sends(run([profile(), reminder(channels=("sms", "email"))])) == [("m1", "sms")]
    cheaper = replace(POLICY, channel_rules=replace(POLICY.channel_rules, prefer_cheaper=True))
    result = run([profile(), reminder(channels=("sms", "email"))], policy=cheaper)
    assert sends(result) == [("m1", "email")]
    assert "channel:cost:email>sms" in result.decisions[0].reasons


def test_scores_decay_with_their_half_life():
    old_push = feedback(1, "clicked", T0 - 300 * DAY, "push")  # 2.0, ten half-lives ago
    recent_email = feedback(2, "opened", T0 - DAY, "email")  # 1.0, a day ago
    result = run([profile(), old_push, recent_email, reminder(channels=("push", "email"))])
    assert sends(result) == [("m1", "email")]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["opened", "clicked", "ignored", "bounced", "delivered"]),
            st.sampled_from(["email", "sms", "push"]),
            st.integers(0, 30 * DAY),
        ),
        max_size=12,
    )
)
def test_engagement_ordering_is_the_same_on_every_replay(events):
    records: list[Input] = [profile()]
    records += [feedback(i, k, T0 - at, ch) for i, (k, ch, at) in enumerate(events)]
    records.append(reminder(channels=("email", "sms", "push")))
    first, second = run(records), run(records)
    assert first.decisions == second.decisions and sends(first) == sends(second)


# -- fallback ----------------------------------------------------------------------------------


def test_a_bounced_message_goes_out_on_the_next_channel_once_and_stops_counting():
    promo = candidate("m1", channels=("email", "sms"), created_at=T0)
    bounce = feedback(1, "bounced", T0 + MINUTE, "email", message_id="m1")
    result = run([profile(), promo, bounce, replace(bounce, event_id="f2")], policy=MATRIX_ONLY)
    assert sends(result) == [("m1", "email"), ("m1~sms", "sms")]
    fallback = result.decisions[-1]
    assert fallback.reasons[0] == "fallback_of:m1" and fallback.outcome is Outcome.SENT
    sent_log = result.states["c1"].sends.sends()
    assert [(channel, at) for at, channel, _ in sent_log] == [("sms", T0 + MINUTE)]


def test_no_delivered_within_fallback_after_sends_on_the_next_channel_at_that_moment():
    result = run([profile(), reminder(channels=("push", "sms"))], until=T0 + HOUR)
    assert sends(result) == [("m1", "push"), ("m1~sms", "sms")]
    assert result.outbound[1].sent_at == T0 + 15 * MINUTE


def test_a_delivered_report_in_time_means_no_fallback():
    delivered = feedback(1, "delivered", T0 + 5 * MINUTE, "push", message_id="m1")
    result = run([profile(), reminder(channels=("push", "sms")), delivered], until=T0 + HOUR)
    assert sends(result) == [("m1", "push")]


def test_a_late_delivered_after_the_fallback_is_recorded_not_acted_on():
    late = feedback(1, "delivered", T0 + 20 * MINUTE, "push", message_id="m1")
    result = run([profile(), reminder(channels=("push", "sms")), late], until=T0 + HOUR)
    assert sends(result) == [("m1", "push"), ("m1~sms", "sms")]
    assert [e.type for e in result.states["c1"].recent] == ["delivered"]


def test_the_worker_timer_and_a_replay_fall_back_alike():
    """The release timer (Due at the clock) fires the check as a later record would."""
    first = apply_record(None, profile(), T0, POLICY)
    sent = apply_record(first.state, reminder(channels=("push", "sms")), T0, POLICY)
    assert sent.kept.next_due == T0 + 15 * MINUTE
    checked = apply_record(sent.state, Due("c1"), T0 + 20 * MINUTE, POLICY)
    assert [(m.message_id, m.sent_at) for m in checked.outbound] == [("m1~sms", T0 + 15 * MINUTE)]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["bounced", "delivery_failed", "delivered", "opened"]),
            st.sampled_from(["m1", "m1~sms", "m1~email", "m1~push"]),
            st.integers(0, 40),
        ),
        max_size=10,
    )
)
def test_a_fallback_never_sends_twice_on_one_channel(reports):
    records: list[Input] = [profile(), reminder(channels=("push", "sms", "email"))]
    records += [
        feedback(i, kind, T0 + minutes * MINUTE, None, message_id=mid)
        for i, (kind, mid, minutes) in enumerate(sorted(reports, key=lambda r: r[2]))
    ]
    result = run(records, until=T0 + 2 * HOUR)
    channels = [m.channel for m in result.outbound]
    assert len(channels) == len(set(channels))
    assert len({d.message_id for d in result.decisions}) == len(result.decisions)


# -- feedback ----------------------------------------------------------------------------------


def promo(n: int, at: int) -> Input:
    return candidate(f"p{n}", channels=("email",), created_at=at)


def test_a_detractor_gets_the_stricter_caps_for_thirty_days():
    nps = feedback(1, "nps", T0, None, score="3")
    offers = [promo(n, T0 + n * HOUR) for n in range(1, 4)]
    result = run([profile(), nps, *offers])
    assert [d.outcome for d in result.decisions] == [Outcome.SENT] + [Outcome.SUPPRESSED] * 2
    assert result.decisions[1].reasons == ("cap:feedback_detractor",)
    later = [promo(n, T0 + 31 * DAY + n * HOUR) for n in range(4, 7)]
    assert all(d.outcome is Outcome.SENT for d in run([profile(), nps, *later]).decisions)


def test_a_policy_without_feedback_caps_has_none_and_keeps_its_meaning():
    plain = parse_policy('version = "before-feedback"\n')
    assert plain.detractor_caps == () and plain.history_ms == 0
    nps = feedback(1, "nps", T0, None, score="0")
    offers = [promo(n, T0 + n * HOUR) for n in range(1, 3)]
    assert all(
        d.outcome is Outcome.SENT for d in run([profile(), nps, *offers], policy=plain).decisions
    )


def test_a_promoter_is_not_a_detractor_and_scores_count_against_the_last_contact():
    sent = run([profile(), promo(1, T0), feedback(1, "csat", T0 + HOUR, None, score="5")])
    assert sent.states["c1"].detractor_until == 0
    applied = apply_record(
        sent.states["c1"], feedback(2, "nps", T0 + 2 * HOUR, None, score="2"), T0, POLICY
    )
    assert [(s.kind, s.score, s.channel, s.detractor) for s in applied.scores] == [
        ("nps", 2.0, "email", True)
    ]


def test_a_complaint_on_a_channel_stops_promo_there_but_not_service():
    complaint = feedback(1, "complaint", T0, "sms")
    offer = candidate("p1", channels=("sms",), created_at=T0 + HOUR)
    notice = candidate("s1", channels=("sms",), category=Category.SERVICE, created_at=T0 + HOUR)
    result = run([profile(), complaint, offer, notice])
    assert [(d.message_id, d.outcome, d.reasons) for d in result.decisions] == [
        ("p1", Outcome.SUPPRESSED, ("complaint:sms",)),
        ("s1", Outcome.SENT, ()),
    ]


# -- signals -----------------------------------------------------------------------------------


def inbound(n: int, kind: str, at: int, channel: str) -> CustomerEvent:
    return CustomerEvent(f"i{n}", "c1", kind, at, channel, {"direction": "inbound"})


def test_a_customer_who_turns_from_chat_to_a_call_within_the_window_is_a_signal():
    chat = inbound(1, "chat_message", T0, "messenger")
    call = inbound(2, "inbound_call", T0 + 4 * MINUTE, "call")
    result = run([profile(), chat, call])
    assert [(s.from_channel, s.to_channel, s.gap_ms, s.events) for s in result.signals] == [
        ("messenger", "call", 4 * MINUTE, ("i1", "i2"))
    ]
    assert not run([profile(), chat, replace(call, occurred_at=T0 + HOUR)]).signals
    assert not run([profile(), chat, replace(call, channel="messenger")]).signals


def test_a_switch_can_lower_the_score_of_the_channel_left():
    penalised = replace(POLICY, channel_rules=replace(POLICY.channel_rules, switch_penalty=1.0))
    chat = inbound(1, "chat_message", T0, "messenger")
    call = inbound(2, "inbound_call", T0 + MINUTE, "call")
    state = run([profile(), chat, call], policy=penalised).states["c1"]
    assert state.engagement["messenger"].value == -1.0


# -- state -------------------------------------------------------------------------------------


def test_the_new_state_round_trips_and_a_version_2_state_still_reads():
    result = run(
        [
            profile(segment="premium", attributes={"tier": "gold"}),
            feedback(1, "opened", T0 - DAY, "push"),
            feedback(2, "nps", T0 - HOUR, None, score="1"),
            inbound(3, "chat_message", T0 - MINUTE, "messenger"),
            reminder(channels=("push", "sms")),
        ]
    )
    state = result.states["c1"]
    assert state.awaiting and state.engagement and state.detractor_until and state.last_inbound
    assert decode_state(encode_state(state)) == state
    import msgpack

    fields = msgpack.unpackb(encode_state(state), strict_map_key=False)
    version_2 = [2, *fields[1:10], fields[10]]
    version_2[2] = version_2[2][:4]  # a profile without segment and attributes
    old = decode_state(msgpack.packb(version_2))
    assert old.journeys == state.journeys and not old.awaiting and old.detractor_until == 0
    assert old.profile is not None and old.profile.segment is None


# -- the best time -----------------------------------------------------------------------------

BEST_TIME = parse_policy(
    POLICY_TEXT + '\n[categories.promo]\nsend_time = "engagement"\n', "best-time.toml"
)


def evening_reader() -> list[Input]:
    """Opens email at 19:00 UTC (T0 is noon) on three days before."""
    return [
        profile(),
        *(feedback(n, "opened", T0 - n * DAY + 7 * HOUR, "email") for n in (1, 2, 3)),
        feedback(4, "opened", T0 - 2 * DAY - 3 * HOUR, "email"),  # one morning open
    ]


def test_a_promo_waits_for_the_hour_the_customer_reads_at():
    offer = candidate("p1", channels=("email",), urgency=Urgency.NORMAL, created_at=T0)
    result = run([*evening_reader(), offer], until=T0 + DAY, policy=BEST_TIME)
    deferred, sent = result.decisions
    assert (deferred.outcome, deferred.reasons) == (Outcome.DEFERRED, ("send_time:19h",))
    assert deferred.release_at == T0 + 7 * HOUR
    assert (sent.outcome, sent.decided_at) == (Outcome.SENT, T0 + 7 * HOUR)


def test_urgent_messages_and_customers_without_history_go_at_once():
    urgent = candidate("p1", channels=("email",), urgency=Urgency.IMMEDIATE, created_at=T0)
    assert run([*evening_reader(), urgent], policy=BEST_TIME).decisions[0].outcome is Outcome.SENT
    normal = candidate("p2", channels=("email",), urgency=Urgency.NORMAL, created_at=T0)
    assert run([profile(), normal], policy=BEST_TIME).decisions[0].outcome is Outcome.SENT


def test_a_best_hour_inside_quiet_hours_is_not_chosen():
    quiet = parse_policy(
        POLICY_TEXT
        + '\n[quiet_hours]\nstart = "18:00"\nend = "08:00"\n'
        + '[categories.promo]\nsend_time = "engagement"\n',
        "quiet-best-time.toml",
    )
    offer = candidate("p1", channels=("email",), urgency=Urgency.NORMAL, created_at=T0 - 3 * HOUR)
    result = run([*evening_reader(), offer], until=T0 + DAY, policy=quiet)
    # 19:00 is quiet; the morning open (09:00) is the best hour left, and it is now: sent
    assert [d.outcome for d in result.decisions] == [Outcome.SENT]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40 * DAY // HOUR), min_size=1, max_size=25), st.integers(0, 10))
def test_a_detractors_caps_hold_in_every_window_of_the_period(hours, score):
    nps = feedback(1, "nps", T0, None, score=str(score))
    offers = [promo(n, T0 + h * HOUR) for n, h in enumerate(sorted(hours))]
    result = run([profile(), nps, *offers])
    until = T0 + 30 * DAY
    sent = [d.decided_at for d in result.decisions if d.outcome is Outcome.SENT]
    for start in sent:
        window = [t for t in sent if start <= t < start + 7 * DAY]
        if score <= 6 and start < until:  # a detractor: promo at most once in 7 days
            assert len([t for t in window if t < until]) <= 1
        assert len(window) <= 5  # the policy's own cap holds for everyone
