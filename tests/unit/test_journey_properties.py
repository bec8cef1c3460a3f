"""Journey invariants over any order and timing of a customer's events (hypothesis)."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from app.policy.engine import Input
from app.policy.model import HOUR, CustomerEvent, Outcome
from app.simulate import replay
from tests.builders import T0, profile
from tests.unit.test_journeys import POLICY, ev

KINDS = [
    "application_submitted",
    "application_withdrawn",
    "application_completed",
    "application_approved",
    "email_clicked",
    "service_visit_requested",
    "service_visit_cancelled",
]
ENDS = {
    "loan_application": {"application_withdrawn", "application_completed"},
    "service_visit": {"service_visit_cancelled"},
}
KEYS = {"loan_application": "application_id", "service_visit": "visit_id"}
TRIGGERS = {"loan_application": "application_submitted", "service_visit": "service_visit_requested"}

an_event = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 5 * 24 * 60),  # minutes after T0
    st.sampled_from(["A", "B", None]),  # the instance key, or none (speaks to every instance)
)


def inputs(drawn: list[tuple[str, int, str | None]], timezone: str) -> list[Input]:
    records: list[Input] = [profile("c1", timezone=timezone)]
    for n, (kind, minutes, key) in enumerate(sorted(drawn, key=lambda d: d[1]), 1):
        attributes = {}
        if key is not None:
            attributes = {"application_id": key, "visit_id": key}
        if kind == "service_visit_requested":
            attributes["visit_at"] = str(T0 + (minutes + 600) * 60_000)
        records.append(ev(n, kind, T0 + minutes * 60_000, **attributes))
    return records


@settings(max_examples=150, deadline=None)
@given(st.lists(an_event, max_size=12), st.sampled_from(["Europe/Berlin", "UTC", "Asia/Tokyo"]))
def test_no_step_after_its_instance_ended_and_one_final_decision_per_step(drawn, timezone):
    records = inputs(drawn, timezone)
    result = replay(enumerate(records, 1), POLICY, T0 + 40 * 24 * HOUR)

    # Every step that became a candidate has exactly one final decision.
    finals: dict[str, int] = defaultdict(int)
    for d in result.decisions:
        assert d.journey is not None and d.step is not None
        finals[d.message_id] += d.outcome is not Outcome.DEFERRED
    assert set(finals.values()) <= {1}

    # Nothing of an instance is decided (but cancelled) once an event that ends it was read.
    live: dict[tuple[str, str], bool] = {}
    for t in result.transitions:
        instance = (t.journey, t.key)
        if t.kind == "entered":
            assert not live.get(instance), "entered twice while live"
            live[instance] = True
        elif t.kind in ("exited", "converted", "timed_out"):
            assert live.pop(instance)
        elif t.kind.startswith("step_") and t.kind != "step_cancelled":
            assert live.get(instance), f"{t.kind} of {instance} after it ended"

    # ...and checked against the events themselves: no message after an ending event (one at
    # the same moment may go first: what is due by a record's time is released before it).
    events = [r for r in records[1:] if isinstance(r, CustomerEvent)]
    for m in result.outbound:
        journey = m.payload["journey"]
        key = m.payload[KEYS[journey]]
        entry = max(
            n
            for n, e in enumerate(events)
            if e.type == TRIGGERS[journey]
            and e.occurred_at <= m.sent_at
            and e.attributes.get(KEYS[journey], "") == key
        )
        for e in events[entry + 1 :]:
            speaks = e.attributes.get(KEYS[journey]) in (None, key)
            if e.type in ENDS[journey] and speaks and e.occurred_at < m.sent_at:
                raise AssertionError(f"{m.message_id} sent at {m.sent_at} after {e}")


@settings(max_examples=60, deadline=None)
@given(st.lists(an_event, max_size=10))
def test_the_same_inputs_give_the_same_journeys(drawn):
    records = inputs(drawn, "Europe/Berlin")
    first = replay(enumerate(records, 1), POLICY, T0 + 40 * 24 * HOUR)
    again = replay(enumerate(records, 1), POLICY, T0 + 40 * 24 * HOUR)
    assert first.transitions == again.transitions
    assert first.decisions == again.decisions
    assert first.states == again.states
