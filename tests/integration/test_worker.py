"""The core engine end to end: a real broker, a real worker process, RocksDB on disk."""

from __future__ import annotations

import io
import random
from collections import Counter

import pytest

from app.codecs.records import iso
from app.policy.policy_file import load_policy
from app.simulate import read_records, replay
from app.stream.app import QUEUED_FETCHES
from app.traffic import now_ms
from tests.integration.conftest import SCHEMAS, TopicReader, wait_until
from tests.traffic import activity, calm_zones, profiles

pytestmark = pytest.mark.integration


def simulated(records, until_ms):
    import json

    lines = io.StringIO("\n".join(json.dumps(r) for r in records))
    return replay(read_records(lines), load_policy(), until=until_ms)


def test_worker_decides_like_the_replay_and_publishes_per_channel(harness):
    rng = random.Random(7)
    start = now_ms()
    customer_profiles = profiles(rng, 40, calm_zones(start))
    traffic = activity(rng, 40, 600, start - 60_000, 60_000)
    worker = harness.worker()
    harness.publish(customer_profiles)
    wait_until(
        lambda: worker.metric("tact_input_records_total", topic=harness.topics.profiles) >= 40,
        90,
        "the worker to read the profiles",
    )
    assert worker.probe("live")[0] == 200  # "starting" until the first heartbeat, then "ok"
    wait_until(lambda: worker.probe("live") == worker.probe("ready") == (200, "ok"), 30, "probes")
    harness.publish(traffic)
    expected = simulated(customer_profiles + traffic, now_ms())
    reader = TopicReader(
        harness.broker.bootstrap, [harness.topics.decisions, *harness.topics.outbound.values()]
    )
    wait_until(
        lambda: (
            reader.poll(0.5)
            or len(reader.records[harness.topics.decisions]) >= len(expected.decisions)
        ),
        90,
        f"{len(expected.decisions)} decisions",
    )
    reader.poll(1.0)

    live = reader.values(harness.topics.decisions, "tact.Decision")

    def as_rows(ds):
        return sorted(
            (d["message_id"], d["outcome"], d["channel"], tuple(d["reasons"])) for d in ds
        )

    assert as_rows(live) == as_rows(
        [
            {
                "message_id": d.message_id,
                "outcome": d.outcome.value,
                "channel": d.channel,
                "reasons": d.reasons,
            }
            for d in expected.decisions
        ]
    )
    outcomes = Counter(d["outcome"] for d in live)
    assert outcomes["sent"] > 50 and outcomes["suppressed"] > 10, outcomes

    for channel, topic in harness.topics.outbound.items():
        messages = reader.values(topic, "tact.OutboundMessage")
        assert all(m["channel"] == channel for m in messages)
        assert sorted(m["message_id"] for m in messages) == sorted(
            m.message_id for m in expected.outbound if m.channel == channel
        )
    with_context = [
        m
        for t in harness.topics.outbound.values()
        for m in reader.values(t, "tact.OutboundMessage")
        if m["context"]
    ]
    assert with_context and all(" ago" in m["context_summary"] for m in with_context)
    assert worker.metric("tact_decisions_total") == len(live)


def test_bad_records_go_to_dead_letters_and_the_worker_keeps_deciding(harness):
    t = harness.topics
    start = now_ms()
    worker = harness.worker()
    harness.publish(
        [
            {
                "kind": "profile",
                "customer_id": "c1",
                "timezone": "UTC",
                "consents": {"sms": True},
                "reachable": {"sms": True},
            }
        ]
    )

    def good(n):
        return {
            "kind": "candidate",
            "message_id": f"ok{n}",
            "customer_id": "c1",
            "category": "service",
            "audience": "personal",
            "channels": ["sms"],
            "urgency": "immediate",
            "created_at": iso(start),
            "template": "code",
        }

    wrong_schema = SCHEMAS["tact.CustomerEvent"].encode(
        {
            "event_id": "e",
            "customer_id": "c1",
            "type": "x",
            "occurred_at": start,
            "channel": None,
            "attributes": {},
        }
    )
    harness.publish([good(1)])
    harness.publish_raw(
        [
            (t.candidates, b"c1", b"\xde\xad\xbe\xef"),
            (t.candidates, b"c1", wrong_schema),
            (t.events, b"c1", None),
            (
                t.profiles,
                b"c2",
                SCHEMAS["tact.CustomerProfile"].encode(
                    {
                        "customer_id": "c2",
                        "timezone": "Nowhere/Else",
                        "consents": {},
                        "reachable": {},
                        "preferred_channel": None,
                    }
                ),
            ),
        ]
    )
    harness.publish([{**good(2), "customer_id": "ghost", "message_id": "ghost1"}, good(3)])
    reader = TopicReader(harness.broker.bootstrap, [t.decisions, t.dead_letters])
    wait_until(
        lambda: (
            reader.poll(0.5)
            or (len(reader.records[t.dead_letters]) >= 4 and len(reader.records[t.decisions]) >= 3)
        ),
        90,
        "dead letters and decisions",
    )
    letters = reader.values(t.dead_letters, "tact.DeadLetter")
    errors = sorted(letter["error"] for letter in letters)
    assert any("not in the Confluent wire format" in e for e in errors)
    assert any("schema id 1 is not tact.Candidate" in e for e in errors)
    assert any("empty value: expected a tact.CustomerEvent" in e for e in errors)
    assert any("'Nowhere/Else' is not an IANA time zone" in e for e in errors)
    raw = {letter["value"] for letter in letters}
    assert b"\xde\xad\xbe\xef" in raw and wrong_schema in raw and len(letters) == 4
    decided = {d["message_id"]: d for d in reader.values(t.decisions, "tact.Decision")}
    assert set(decided) == {"ok1", "ghost1", "ok3"}
    # A readable candidate for a customer with no profile is decided, with the reason:
    assert (decided["ghost1"]["outcome"], decided["ghost1"]["reasons"]) == (
        "suppressed",
        ["unknown_customer"],
    )
    assert worker.alive


def test_held_message_is_released_on_time_by_a_restarted_worker(harness, tmp_path):
    from datetime import UTC, datetime

    start = now_ms()
    clock = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")  # noqa: E731
    release_at = start + 32_000  # after a start, a kill -9 and a restart
    policy = tmp_path / "quiet.toml"
    policy.write_text(
        f'version = "quiet-test"\n[quiet_hours]\nstart = "{clock(start - 60_000)}"\n'
        f'end = "{clock(release_at)}"\n'
    )
    t = harness.topics
    worker = harness.worker(TACT_POLICY_PATH=str(policy))
    harness.publish(
        [
            {
                "kind": "profile",
                "customer_id": "c1",
                "timezone": "UTC",
                "consents": {"email": True},
                "reachable": {"email": True},
            }
        ]
    )
    harness.publish(
        [
            {
                "kind": "candidate",
                "message_id": "night",
                "customer_id": "c1",
                "category": "promo",
                "audience": "mass",
                "channels": ["email"],
                "urgency": "normal",
                "created_at": iso(now_ms()),
                "template": "t",
            }
        ]
    )
    reader = TopicReader(harness.broker.bootstrap, [t.decisions, t.outbound["email"]])
    wait_until(lambda: reader.poll(0.5) or reader.records[t.decisions], 60, "the deferral")
    [deferred] = reader.values(t.decisions, "tact.Decision")
    expected_release = release_at // 1000 * 1000  # the policy's clock has whole seconds
    assert (deferred["outcome"], deferred["release_at"]) == ("deferred", expected_release)

    worker.kill()  # the hold must survive in the table, not in memory
    worker.start()
    wait_until(lambda: reader.poll(0.5) or reader.records[t.outbound["email"]], 90, "the release")
    [final] = reader.values(t.decisions, "tact.Decision")[1:]
    assert (final["outcome"], final["decided_at"]) == ("sent", expected_release)
    [sent] = reader.records[t.outbound["email"]]
    assert sent.timestamp >= expected_release, "never released before its time"


def test_a_backlog_is_read_a_few_fetches_at_a_time(harness):
    """However long the backlog, the worker holds only QUEUED_FETCHES fetches of it ahead of the
    batch it decides: memory stays bounded, and nothing is lost on the way."""
    rng = random.Random(11)
    start = now_ms()
    records = profiles(rng, 200, calm_zones(start)) + activity(rng, 200, 3000, start, 60_000)
    harness.publish(records)
    worker = harness.worker(TACT_FETCH_MAX_RECORDS="40")
    harness.wait_until_all_committed()

    largest_batch = (1 + QUEUED_FETCHES) * 40
    assert largest_batch <= 500  # a bucket of tact_batch_records
    batches = worker.metric("tact_batch_records_count")
    assert batches >= len(records) / largest_batch
    assert worker.metric("tact_batch_records_bucket", le="500.0") == batches
    candidates = sum(r["kind"] == "candidate" for r in records)
    assert worker.metric("tact_decisions_total") == candidates


def test_an_urgent_code_is_decided_ahead_of_a_campaign(harness):
    """A campaign's candidates wait their turn in the worker's backlog; a code published on the
    urgent topic while the worker decides them is not queued behind them (app/stream/lanes.py)."""
    rng = random.Random(12)
    start = now_ms()
    customers = 2_000
    harness.publish(profiles(rng, customers, calm_zones(start)))
    worker = harness.worker(TACT_FETCH_MAX_RECORDS="1000")  # 1,000 of the campaign per write
    t = harness.topics
    wait_until(
        lambda: worker.metric("tact_input_records_total", topic=t.profiles) >= customers,
        90,
        "the profiles to be read",
    )
    promo = {"category": "promo", "audience": "mass", "channels": ["email"], "urgency": "normal"}
    campaign = harness.encode(
        {
            **promo,
            "kind": "candidate",
            "message_id": f"promo-{i}",
            "customer_id": f"c{i % customers}",
            "created_at": iso(start),
            "template": "sale",
        }
        for i in range(50_000)
    )
    codes = [
        {
            "kind": "candidate",
            "lane": "urgent",
            "message_id": f"code-{i}",
            "customer_id": f"c{i}",
            "category": "service",
            "audience": "personal",
            "channels": ["sms"],
            "urgency": "immediate",
            "created_at": iso(now_ms()),
            "template": "code",
        }
        for i in range(20)
    ]
    assert {e.topic for e in harness.encode(codes)} == {t.urgent}
    harness.publish_encoded(campaign)
    wait_until(
        lambda: worker.metric("tact_input_records_total", topic=t.candidates) > 0,
        60,
        "the worker to decide the campaign",
        every=0.05,
    )
    harness.publish(codes)
    published = now_ms()  # acknowledged: from here on the codes can be fetched
    harness.wait_until_all_committed()

    reader = TopicReader(harness.broker.bootstrap, [t.decisions])
    reader.poll_until_quiet()
    decided_at = {
        SCHEMAS["tact.Decision"].decode(r.value)["message_id"]: r.timestamp
        for r in reader.records[t.decisions]
    }
    assert len(decided_at) == 50_020
    last_code = max(decided_at[c["message_id"]] for c in codes)
    campaign_at = [decided_at[f"promo-{i}"] for i in range(50_000)]
    left = sum(1 for at in campaign_at if at > published)
    ahead = sum(1 for at in campaign_at if published < at < last_code)
    assert left > 10_000, f"only {left:,} of the campaign were left when the codes came"
    # Queued behind what the worker had fetched, the codes would wait for 8 fetches and more;
    # in the lane they wait for the write in progress and a fetch, then share a write with 100.
    assert ahead <= 5_000, (
        f"{ahead:,} of the campaign were decided between the codes' publication and their decision"
    )
