"""What a contact engine is trusted with, proven on the real broker: an unsubscribe holds, one
customer cannot stop the rest, a bad record never stops a partition, and a broker that started
over is noticed instead of silently passed over."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.codecs.records import iso
from app.policy.bounds import CHANGELOG_RECORD_LIMIT
from app.stream.io import ensure_tact_topics
from app.traffic import now_ms
from tests.integration.conftest import PARTITIONS, TopicReader, wait_until

pytestmark = pytest.mark.integration


def profile(customer_id, channels=("email", "sms"), **changes):
    return {
        "kind": "profile",
        "customer_id": customer_id,
        "timezone": "UTC",
        "consents": {c: True for c in channels},
        "reachable": {c: True for c in channels},
        **changes,
    }


def candidate(message_id, customer_id, **changes):
    return {
        "kind": "candidate",
        "message_id": message_id,
        "customer_id": customer_id,
        "category": "promo",
        "audience": "mass",
        "channels": ["email"],
        "urgency": "immediate",
        "created_at": iso(now_ms()),
        "template": "offer",
        **changes,
    }


def consent_event(event_id, customer_id, kind, at):
    return {
        "kind": "event",
        "event_id": event_id,
        "customer_id": customer_id,
        "type": kind,
        "occurred_at": iso(at),
        "channel": "email",
    }


def decided(reader, harness, count, timeout=90):
    topic = harness.topics.decisions
    wait_until(
        lambda: reader.poll(0.5) or len(reader.records[topic]) >= count,
        timeout,
        f"{count} decisions",
    )
    return {d["message_id"]: d for d in reader.values(topic, "tact.Decision")}


def quiet_now(tmp_path):
    """A policy whose quiet hours hold a normal candidate right now."""
    from datetime import UTC, datetime

    def clock(ms):
        return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")

    path = tmp_path / "quiet.toml"
    start, end = clock(now_ms() - 3_600_000), clock(now_ms() + 3_600_000)
    path.write_text(f'version = "quiet-now"\n[quiet_hours]\nstart = "{start}"\nend = "{end}"\n')
    return path


def test_consent_bounds_and_labels_hold_on_the_broker(harness, tmp_path):
    t = harness.topics
    worker = harness.worker(TACT_POLICY_PATH=str(quiet_now(tmp_path)))
    start = now_ms()
    # c1: unsubscribes, then upstream sends its profile again, still saying email: true.
    # c2: unsubscribes before upstream has sent any profile.
    # c3: a late resubscribe, older than its unsubscribe, arrives last.
    harness.publish([profile("c1"), consent_event("u1", "c1", "unsubscribed", start)])
    harness.publish(
        [profile("c1"), consent_event("u2", "c2", "unsubscribed", start), profile("c2")]
    )
    harness.publish(
        [
            profile("c3"),
            consent_event("u3", "c3", "unsubscribed", start),
            consent_event("r3", "c3", "resubscribed", start - 60_000),
        ]
    )
    huge = {"blob": "x" * 240_000}  # ten of these would be a 2.4 MB state
    night = {"urgency": "normal", "category": "service"}
    harness.publish(
        [candidate(f"promo-{c}", c) for c in ("c1", "c2", "c3")]
        + [profile("big")]
        + [candidate(f"big-{i}", "big", payload=huge, expires_at=None, **night) for i in range(10)]
        + [profile("hot")]
        + [candidate(f"hot-{i:04d}-{'h' * 100}", "hot", category="service") for i in range(1200)]
        + [profile(f"d{i % 50}", ("email",)) for i in range(50)]
    )
    # 3,000 distinct duplicates: each names the message that claimed its dedupe_key first.
    pairs = [
        candidate(f"{kind}{i}", f"d{i % 50}", category="service", dedupe_key=f"k{i}")
        for i in range(1500)
        for kind in ("first", "again")
    ]
    reader = TopicReader(harness.broker.bootstrap, [t.decisions])
    harness.publish(pairs[:1000])
    decisions = decided(reader, harness, 3 + 10 + 1200 + 1000)
    series = worker.series("tact_decisions_total")
    harness.publish(pairs[1000:])
    decisions = decided(reader, harness, 3 + 10 + 1200 + 3000)

    for customer in ("c1", "c2", "c3"):  # the unsubscribe holds in every order
        assert decisions[f"promo-{customer}"]["reasons"] == ["email:no_consent"], customer
    big = [decisions[f"big-{i}"]["reasons"] for i in range(10)]
    assert big == [["pending_limit"]] * 10  # too large to hold: refused, not stored
    hot = [d for m, d in decisions.items() if m.startswith("hot-")]
    assert sum(d["reasons"] == ["customer_limit"] for d in hot) == 200  # 1,200 - the limit
    assert worker.series("tact_decisions_total") == series, "a duplicate must not add a series"
    duplicates = [
        d
        for d in decisions.values()
        if d["reasons"][:1] != [] and d["reasons"][0].startswith("duplicate_of:")
    ]
    assert len(duplicates) == 1500

    changelog = TopicReader(
        harness.broker.bootstrap, [f"{harness.env['TACT_APP_ID']}-customers-changelog"]
    )
    changelog.poll_until_quiet()
    largest = max(len(r.value or b"") for r in next(iter(changelog.records.values())))
    assert largest < CHANGELOG_RECORD_LIMIT, f"a changelog record of {largest:,} bytes"
    assert worker.alive


def test_a_record_that_kills_the_worker_twice_is_set_aside(harness):
    """The failpoint makes the worker die like a crash in a C extension when it applies a record
    carrying POISON; a supervisor (k8s) starts it again each time."""
    t = harness.topics
    worker = harness.worker(TACT_FAILPOINT="poison:POISON")
    harness.publish([profile("c1")])
    before = [candidate(f"m{i}", "c1", category="service") for i in range(5)]
    after = [candidate(f"n{i}", "c1", category="service") for i in range(5)]
    harness.publish([*before, candidate("p1", "c1", template="POISON"), *after])
    deaths = 0
    reader = TopicReader(harness.broker.bootstrap, [t.decisions, t.dead_letters])
    for _ in range(6):
        wait_until(
            lambda: (
                not worker.alive or (reader.poll(0.5) or len(reader.records[t.decisions]) >= 10)
            ),
            90,
            "the worker to die on the record, or to decide past it",
        )
        if worker.alive:
            break
        deaths += 1
        worker.start()
    assert deaths == 2, f"died {deaths} times"
    reader.poll(2)
    assert set(d["message_id"] for d in reader.values(t.decisions, "tact.Decision")) == {
        *(c["message_id"] for c in before + after)
    }
    [letter] = reader.values(t.dead_letters, "tact.DeadLetter")
    assert "stopped twice while deciding this record" in letter["error"]
    assert worker.metric("tact_dead_letters_total", kind="poison") == 1


async def recreate_inputs(harness):
    admin = AIOKafkaAdminClient(bootstrap_servers=harness.broker.bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(harness.topics.inputs))
    finally:
        await admin.close()
    await asyncio.sleep(1)
    await ensure_tact_topics(harness.broker.bootstrap, harness.topics, PARTITIONS)


def test_an_input_log_that_started_over_is_refused_until_reset_state(harness):
    t = harness.topics
    worker = harness.worker()
    harness.publish([profile(f"c{i}") for i in range(8)])
    harness.publish([consent_event(f"u{i}", f"c{i}", "unsubscribed", now_ms()) for i in range(8)])
    harness.publish(
        [candidate(f"old{i}", f"c{i}", category="service", channels=["sms"]) for i in range(40)]
    )
    reader = TopicReader(harness.broker.bootstrap, [t.decisions])
    decided(reader, harness, 40)
    worker.stop()
    asyncio.run(recreate_inputs(harness))  # the broker's input logs start over, RocksDB does not
    fresh = [candidate(f"new{i}", f"c{i % 8}", channels=["email", "sms"]) for i in range(8)]
    harness.publish(fresh)
    worker.start()
    wait_until(lambda: worker.metric("tact_input_log_behind_state") > 0, 60, "the reset to be seen")
    assert "ends at offset" in worker.log_text() and "--reset-state" in worker.log_text()
    reader.poll(3)
    assert not any(
        d["message_id"].startswith("new") for d in reader.values(t.decisions, "tact.Decision")
    )
    worker.stop()
    worker.env["TACT_RESET_STATE"] = "1"
    worker.start()
    decisions = decided(reader, harness, 40 + 8)
    for i in range(8):  # the unsubscribes are still known: email refused, sms carries it
        assert decisions[f"new{i}"]["reasons"] == ["email:no_consent"], decisions[f"new{i}"]
    assert worker.metric("tact_input_log_behind_state") == 0
