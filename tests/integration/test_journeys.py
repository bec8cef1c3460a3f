"""A journey on the real broker: 1,000 customers through a loan application, the worker killed
mid-journey (kill -9) and its RocksDB deleted once, exits arriving while a step is held.
Every assertion is made from the topics alone, and the customers' state equals the replay."""

from __future__ import annotations

import io
import json
import random
import shutil
import threading
import time
from collections import Counter
from typing import Any

import pytest

from app.policy.policy_file import load_policy
from app.simulate import read_records, replay, state_as_json
from app.traffic import now_ms
from tests.integration import checks
from tests.integration.conftest import TopicReader, wait_until
from tests.integration.scenarios import assert_running, start_with_profiles

pytestmark = pytest.mark.integration

CUSTOMERS = 1_000
FEED_S = 30
# Seconds, not days, so the story runs while the test waits. The promo offer is held by the
# arbitration window for 8 s: a withdrawal in that time cancels it.
JOURNEY_POLICY = """
version = "journey-test"
[arbitration]
window = "8s"
[[journeys]]
name = "loan"
trigger = "application_submitted"
key = "application_id"
exit_on = ["application_withdrawn"]
goal = "application_completed"
max_duration = "32s"
  [[journeys.steps]]
  name = "confirm"
  after = "0s"
  template = "loan.confirm"
  category = "service"
  urgency = "immediate"
  channels = ["sms", "email"]
  [[journeys.steps]]
  name = "next_steps"
  after = "5s"
  template = "loan.next_steps"
  category = "service"
  channels = ["email", "sms"]
  [[journeys.steps]]
  name = "offer"
  after = "3s"
  template = "loan.offer"
  category = "promo"
  channels = ["email"]
  [[journeys.steps]]
  name = "approved"
  wait_for = "application_approved"
  within = "20s"
  template = "loan.approved"
  category = "service"
  urgency = "immediate"
  channels = ["push", "sms", "email"]
"""


def loan_traffic(rng: random.Random, start: int) -> list[dict[str, Any]]:
    records = []
    for n in range(CUSTOMERS):
        customer, application = f"c{n}", f"A{n}"
        submitted = start + rng.randrange(0, FEED_S * 1000 // 2)
        records.append(_event(f"s{n}", customer, "application_submitted", submitted, application))
        what = rng.choice(["withdrawn", "approved", "completed", "nothing"])
        if what == "withdrawn":  # mostly while the offer is held (it is due 8 s after entry)
            at = submitted + rng.randrange(6_000, 15_000)
            records.append(_event(f"w{n}", customer, "application_withdrawn", at, application))
        elif what in ("approved", "completed"):
            at = submitted + rng.randrange(10_000, 14_000)
            records.append(_event(f"a{n}", customer, "application_approved", at, application))
        if what == "completed":
            at = submitted + rng.randrange(14_000, 15_000)
            records.append(
                _event(f"g{n}", customer, "application_completed", at, application, amount="1000")
            )
    return sorted(records, key=lambda r: r["occurred_at"])


def _event(event_id, customer, kind, at, application, **more):
    return {
        "kind": "event",
        "event_id": event_id,
        "customer_id": customer,
        "type": kind,
        "occurred_at": at,
        "attributes": {"application_id": application, **more},
    }


class OnTime(threading.Thread):
    """Publishes each record when the wall clock reaches its time, as upstream would."""

    def __init__(self, harness, records) -> None:
        super().__init__(daemon=True)
        self.harness, self.records = harness, records
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pending = list(self.records)
            while pending:
                now = now_ms()
                due = [r for r in pending if r["occurred_at"] <= now]
                pending = pending[len(due) :]
                if due:
                    self.harness.publish(due)
                time.sleep(0.1)
        except BaseException as exc:
            self.error = exc


def test_the_loan_journey_survives_kill_nine_and_a_lost_disk(harness, tmp_path):
    rng = random.Random(20261202)
    policy_path = tmp_path / "journeys.toml"
    policy_path.write_text(JOURNEY_POLICY)
    policy = load_policy(policy_path)
    # The feeder publishes each event when its time comes; under load one can reach the log a
    # few hundred ms later. The grace lets it be applied before a step due just after it, as in
    # the replay this test compares with.
    worker, customer_profiles = start_with_profiles(
        harness, rng, CUSTOMERS, policy_path, TACT_RELEASE_GRACE_MS="1000"
    )
    traffic = loan_traffic(rng, now_ms() + 1_000)
    feeder = OnTime(harness, traffic)
    feeder.start()
    topic = harness.topics.events
    for kill in range(2):  # mid-journey: steps are due and held while the worker is down
        wait_until(
            lambda: worker.metric("tact_input_records_total", topic=topic) > 200, 60, "events"
        )
        time.sleep(rng.uniform(2, 6))
        assert_running(worker)
        worker.kill()
        if kill == 0:
            shutil.rmtree(worker.data_dir, ignore_errors=True)  # recover from the changelog
        worker.start()
    feeder.join()
    assert feeder.error is None, feeder.error
    last_deadline = traffic[-1]["occurred_at"] + 33_000
    wait_until(lambda: now_ms() > last_deadline, 120, "every instance to have ended")
    try:
        wait_until(
            lambda: (
                worker.series("tact_journey_instances")
                and worker.metric("tact_journey_instances") == 0
                and worker.metric("tact_deferred_backlog") == 0
            ),
            60,
            "no journey instance live, nothing held",
        )
    except TimeoutError:
        gauges = [
            (s.name, s.labels, s.value)
            for s in worker.samples()
            if s.name in ("tact_journey_instances", "tact_deferred_backlog") and s.value
        ]
        raise AssertionError(f"still live or held: {gauges}\n{worker.log_tail(60)}") from None
    harness.wait_until_all_committed()
    worker.stop()

    t = harness.topics
    reader = TopicReader(harness.broker.bootstrap, [t.decisions, t.journeys, *t.outbound.values()])
    reader.poll_until_quiet()
    lines = io.StringIO("\n".join(json.dumps(r) for r in customer_profiles + traffic))
    expected = replay(read_records(lines), policy, now_ms())

    moved = reader.values(t.journeys, "tact.JourneyTransition")
    repeated = [i for i, n in Counter(m["transition_id"] for m in moved).items() if n > 1]
    assert not repeated, f"{len(repeated)} transitions published twice, e.g. {repeated[:3]}"
    assert {m["transition_id"] for m in moved} == {x.transition_id for x in expected.transitions}
    kinds = Counter(m["transition"] for m in moved)
    assert kinds["entered"] == CUSTOMERS and kinds["step_cancelled"] > 50, kinds

    decisions = reader.values(t.decisions, "tact.Decision")
    checks.one_final_decision_each(decisions, {d.message_id for d in expected.decisions})
    messages = checks.no_message_sent_twice(reader, list(t.outbound.values()))
    checks.sent_matches_decisions(messages, decisions)
    ended = {
        r["customer_id"]: r["occurred_at"]
        for r in traffic
        if r["type"] in ("application_withdrawn", "application_completed")
    }
    late = [m for m in messages if m["sent_at"] > ended.get(m["customer_id"], m["sent_at"])]
    assert not late, f"{len(late)} steps sent after their instance ended, e.g. {late[:2]}"
    assert sorted((d["message_id"], d["outcome"], d["channel"]) for d in decisions) == sorted(
        (d.message_id, d.outcome.value, d.channel) for d in expected.decisions
    )

    changelog = TopicReader(
        harness.broker.bootstrap, [f"{harness.env['TACT_APP_ID']}-customers-changelog"]
    )
    changelog.poll_until_quiet()
    live = checks.table_states(next(iter(changelog.records.values())))
    simulated = {c: state_as_json(s) for c, s in expected.states.items()}
    different = [c for c in simulated if live.get(c) != simulated[c]]
    first = different[0] if different else None
    assert not different, (
        f"{len(different)} customers differ from the replay, e.g. {different[:3]}; "
        f"{checks.state_difference(live.get(first, {}), simulated[first]) if first else ''}"
    )
