"""Journeys in the core: the example policy's two journeys, told as the customer lives them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.codecs.state import decode_state, encode_state
from app.policy.engine import Input
from app.policy.model import HOUR, MINUTE, CustomerEvent, Outcome
from app.policy.policy_file import load_policy
from app.simulate import Replay, replay
from tests.builders import T0, profile

EXAMPLE = Path(__file__).parents[2] / "deploy" / "policies" / "journeys.toml"
POLICY = load_policy(EXAMPLE)
DAY = 24 * HOUR


def utc(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[arg-type]


def ev(n: int, kind: str, at: int, customer: str = "c1", **attributes: str) -> CustomerEvent:
    return CustomerEvent(f"e{n}", customer, kind, at, None, attributes)


def run(records: list[Input], until: int, policy=POLICY) -> Replay:  # type: ignore[no-untyped-def]
    return replay(enumerate(records, 1), policy, until)


def berlin(customer: str = "c1") -> Input:
    return profile(customer, timezone="Europe/Berlin")


def sent(result: Replay) -> list[tuple[str, str, int]]:
    return [(m.template, m.channel, m.sent_at) for m in result.outbound]


def kinds(result: Replay) -> list[str]:
    return [f"{t.kind}:{t.step}" if t.step else t.kind for t in result.transitions]


def test_the_loan_story_from_submission_to_approval():
    approved_at = utc(2026, 11, 20, 15)
    result = run(
        [
            berlin(),
            ev(1, "application_submitted", T0, application_id="A1"),
            ev(2, "email_opened", T0 + 3 * HOUR, template="loan.next_steps"),
            ev(3, "application_approved", approved_at, application_id="A1"),
        ],
        until=approved_at + HOUR,
    )
    assert sent(result) == [
        ("loan.confirm", "sms", T0),
        ("loan.next_steps", "email", T0 + 2 * HOUR),
        ("loan.call", "call", utc(2026, 11, 19, 9)),  # 10:00 in Berlin, the next day
        ("loan.approved", "push", approved_at),
    ]
    call = result.outbound[2]
    assert "email_opened loan.next_steps" in call.context_summary
    assert call.context_summary.endswith("has not yet: application_completed")
    assert kinds(result) == [
        "entered",
        "step_sent:confirm",
        "step_sent:next_steps",
        "step_sent:manager_call",
        "step_sent:approved",
    ]
    decisions = {d.step: d for d in result.decisions}
    assert decisions["confirm"].journey == "loan_application"
    assert decisions["confirm"].message_id == "loan_application/A1/confirm@e1"


def test_a_step_held_in_quiet_hours_is_cancelled_by_the_exit_that_arrives_meanwhile():
    evening = utc(2026, 11, 18, 19, 30)  # 20:30 in Berlin: next_steps falls at 22:30, quiet
    withdrawn = utc(2026, 11, 18, 22)
    result = run(
        [
            berlin(),
            ev(1, "application_submitted", evening, application_id="A1"),
            ev(2, "application_withdrawn", withdrawn, application_id="A1"),
        ],
        until=utc(2026, 11, 25),
    )
    assert sent(result) == [("loan.confirm", "sms", evening)]
    held = [d for d in result.decisions if d.step == "next_steps"]
    assert [d.outcome for d in held] == [Outcome.DEFERRED, Outcome.CANCELLED]
    assert held[1].reasons == ("journey_exit:application_withdrawn",)
    assert held[1].decided_at == withdrawn
    assert kinds(result)[-2:] == ["exited", "step_cancelled:next_steps"]


def test_a_click_skips_the_managers_call_and_the_goal_ends_the_journey_with_its_value():
    result = run(
        [
            berlin(),
            ev(1, "application_submitted", T0, application_id="A1"),
            ev(2, "email_clicked", T0 + 3 * HOUR),
            ev(3, "application_completed", T0 + 2 * DAY, application_id="A1", amount="25000"),
        ],
        until=T0 + 20 * DAY,
    )
    assert [t for t, _, _ in sent(result)] == ["loan.confirm", "loan.next_steps"]
    assert "step_skipped:manager_call" in kinds(result)
    [converted] = [t for t in result.transitions if t.kind == "converted"]
    assert converted.value == 25000.0 and converted.at == T0 + 2 * DAY
    assert not result.states["c1"].journeys


def test_without_the_approval_the_instance_times_out_and_nothing_more_is_sent():
    result = run(
        [berlin(), ev(1, "application_submitted", T0, application_id="A1")], until=T0 + 30 * DAY
    )
    assert len(result.outbound) == 3
    [ended] = [t for t in result.transitions if t.kind == "timed_out"]
    call_due = utc(2026, 11, 19, 9)
    assert ended.at == call_due + 7 * DAY  # the wait_for step's within, from the previous step
    assert not result.states["c1"].journeys


def test_the_same_trigger_again_does_nothing_a_new_key_starts_a_second_instance():
    policy = replace(POLICY, limits=replace(POLICY.limits, max_journeys_per_customer=2))
    result = run(
        [
            berlin(),
            ev(1, "application_submitted", T0, application_id="A1"),
            ev(2, "application_submitted", T0 + MINUTE, application_id="A1"),
            ev(3, "application_submitted", T0 + 2 * MINUTE, application_id="A2"),
            ev(4, "application_submitted", T0 + 3 * MINUTE, application_id="A3"),
            ev(5, "application_withdrawn", T0 + 4 * MINUTE),  # no key: every instance ends
        ],
        until=T0 + DAY,
        policy=policy,
    )
    entered = [(t.kind, t.key, t.reason) for t in result.transitions if t.kind != "step_sent"]
    assert entered == [
        ("entered", "A1", ""),
        ("entered", "A2", ""),
        ("refused", "A3", "journeys_limit"),
        ("exited", "A1", "journey_exit:application_withdrawn"),
        ("exited", "A2", "journey_exit:application_withdrawn"),
    ]
    assert [m.template for m in result.outbound] == ["loan.confirm", "loan.confirm"]


def test_the_service_visit_reminds_two_hours_before_the_visit():
    visit = utc(2026, 11, 21, 8, 30)
    result = run(
        [
            berlin(),
            ev(1, "service_visit_requested", T0, visit_id="V9", visit_at="2026-11-21T09:30+01:00"),
        ],
        until=visit,
    )
    assert sent(result) == [
        ("visit.call", "call", T0),
        ("visit.confirm", "sms", T0 + 5 * MINUTE),
        ("visit.reminder", "push", visit - 2 * HOUR),
    ]


@pytest.mark.parametrize(
    ("submitted", "timezone", "call_at"),
    [
        # Berlin moves to summer time at 02:00 on Sunday 29 March: 10:00 is 08:00 UTC that day.
        (utc(2026, 3, 28, 12), "Europe/Berlin", utc(2026, 3, 29, 8)),
        # ...and back on Sunday 25 October: 10:00 is 09:00 UTC that day.
        (utc(2026, 10, 24, 12), "Europe/Berlin", utc(2026, 10, 25, 9)),
        # New York, late in its day: the next day is the next local day, not UTC's.
        (utc(2026, 11, 19, 2), "America/New_York", utc(2026, 11, 19, 15)),
        (utc(2026, 11, 18, 12), "Asia/Tokyo", utc(2026, 11, 19, 1)),
    ],
)
def test_at_is_the_local_clock_across_time_zones_and_dst(submitted, timezone, call_at):
    result = run(
        [
            profile("c1", timezone=timezone),
            ev(1, "application_submitted", submitted, application_id="A1"),
        ],
        until=submitted + 3 * DAY,
    )
    [call] = [m for m in result.outbound if m.template == "loan.call"]
    assert call.sent_at == call_at


def test_a_restart_between_any_two_records_changes_nothing():
    """The state, encoded and decoded as the worker stores it, resumes exactly."""
    records: list[Input] = [
        berlin(),
        ev(1, "application_submitted", T0, application_id="A1"),
        ev(2, "email_clicked", T0 + HOUR),
        ev(3, "service_visit_requested", T0 + 2 * HOUR, visit_id="V1", visit_at=str(T0 + DAY)),
        ev(4, "application_approved", T0 + 2 * DAY, application_id="A1"),
        ev(5, "service_visit_completed", T0 + 3 * DAY, visit_id="V1"),
    ]
    end = T0 + 20 * DAY
    whole = run(records, until=end)
    for cut in range(1, len(records)):
        first = replay(enumerate(records[:cut], 1), POLICY)
        stored = {c: decode_state(encode_state(s)) for c, s in first.states.items()}
        resumed = replay(
            enumerate(records[cut:], cut + 1),
            POLICY,
            end,
            Replay(states=stored, clock=first.clock),
        )
        assert first.decisions + resumed.decisions == whole.decisions
        assert first.transitions + resumed.transitions == whole.transitions
        assert resumed.states == whole.states
