"""The customer view and `tact explain`'s story, from a replayed state."""

from __future__ import annotations

from click.testing import CliRunner

from app.cli import main
from app.explain import explain_reason, render, story
from app.explain_view import customer_view
from app.policy.model import HOUR, MINUTE, Category
from app.simulate import decision_line, replay
from tests.builders import T0, candidate, profile
from tests.unit.test_journeys import POLICY, berlin, ev


def _replayed():
    records = [
        berlin(),
        profile("c2", timezone="UTC", consents={"email": True}),
        ev(1, "application_submitted", T0, application_id="A1"),
        *[
            candidate(
                f"p{n}",
                "c2",
                category=Category.PROMO,
                channels=("email",),
                created_at=T0 + n * MINUTE,
            )
            for n in range(3)
        ],
    ]
    return replay(enumerate(records, 1), POLICY, until=T0 + 10 * MINUTE)


def test_the_view_counts_caps_and_shows_the_next_step_of_a_journey():
    result = _replayed()
    promo = customer_view(result.states["c2"], POLICY, T0 + 10 * MINUTE)
    daily = next(c for c in promo["caps"] if c["cap"] == "rolling_24h")
    assert (daily["count"], daily["limit"], daily["full"]) == (2, 2, True)
    assert daily["next_slot_at"] == "2026-11-19T12:00:00.000Z"  # the first send + 24 h
    loan = customer_view(result.states["c1"], POLICY, T0 + 10 * MINUTE)
    (journey,) = loan["journeys"]
    assert journey["journey"] == "loan_application" and journey["key"] == "A1"
    assert journey["next_step"] == "next_steps"
    assert journey["next_step_at"] == "2026-11-18T14:00:00.000Z"  # 2 h after the trigger
    assert loan["recent_events"][0]["type"] == "application_submitted"
    assert [d["message_id"] for d in promo["recently_decided"]] == ["p2", "p1", "p0"]


def test_the_story_names_the_rule_that_decided_a_message():
    import json

    result = _replayed()
    decisions = [json.loads(decision_line(d)) for d in result.decisions if d.customer_id == "c2"]
    (second,) = [d for d in result.decisions if d.message_id == "p1"]
    assert [(c.cap, c.count, c.limit) for c in second.caps] == [
        ("rolling_24h", 1, 2),
        ("rolling_7d", 1, 5),
    ]
    view = customer_view(result.states["c2"], POLICY, T0 + HOUR)
    lines: list[str] = []
    render(story("c2", view, decisions, "p2"), lines.append)
    text = "\n".join(lines)
    assert "p2: suppressed" in text
    assert "because the cap rolling_24h was full  (cap:rolling_24h)" in text
    assert "caps as counted then: rolling_24h 2 of 2, rolling_7d 2 of 5" in text
    assert "p0" not in text
    lines.clear()
    render(story("c2", view, decisions, None), lines.append)
    assert any("cap rolling_24h: 2 of 2" in line for line in lines)
    assert explain_reason("email:no_consent") == "not by email: no consent"


def test_explain_says_when_no_worker_is_reachable():
    result = CliRunner().invoke(main, ["explain", "c1", "--view", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "no worker is reachable at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


def test_a_view_beyond_loopback_needs_a_token():
    result = CliRunner().invoke(main, ["worker"], env={"TACT_VIEW_HOST": "0.0.0.0"})
    assert result.exit_code == 2 and "TACT_VIEW_TOKEN" in result.output
