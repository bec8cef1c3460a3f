"""Fallback and channel switches on the real broker: a push without a `delivered` report goes out
by SMS once, with the worker killed (kill -9) between the send and the check; a customer who
turns from chat to a call is a signal on the signals topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from app.codecs.records import iso
from app.traffic import now_ms
from tests.integration import checks
from tests.integration.conftest import PARTITIONS, TopicReader, wait_until

pytestmark = pytest.mark.integration

CUSTOMERS = 20
POLICY = """
version = "fallback-test"
[channels.push]
fallback_after = "10s"
"""


def _profile(n: int) -> dict[str, object]:
    both = {"push": True, "sms": True}
    return {
        "kind": "profile",
        "customer_id": f"c{n}",
        "timezone": "UTC",
        "consents": both,
        "reachable": both,
    }


def _notice(n: int, at: int) -> dict[str, object]:
    return {
        "kind": "candidate",
        "message_id": f"n{n}",
        "customer_id": f"c{n}",
        "category": "service",
        "audience": "personal",
        "channels": ["push", "sms"],
        "urgency": "immediate",
        "created_at": iso(at),
        "template": "notice",
    }


def _event(event_id: str, customer: str, kind: str, at: int, channel: str, **attributes: str):
    return {
        "kind": "event",
        "event_id": event_id,
        "customer_id": customer,
        "type": kind,
        "occurred_at": iso(at),
        "channel": channel,
        "attributes": attributes,
    }


def test_a_push_not_delivered_goes_out_by_sms_once_across_a_kill_nine(harness, tmp_path):
    policy_path = tmp_path / "fallback.toml"
    policy_path.write_text(POLICY)
    worker = harness.worker(TACT_POLICY_PATH=str(policy_path))
    harness.publish([_profile(n) for n in range(CUSTOMERS)])
    wait_until(  # the notices are decided as of their created_at: the worker must be up
        lambda: (
            worker.metric("tact_input_records_total", topic=harness.topics.profiles) >= CUSTOMERS
        ),
        60,
        "the profiles read",
    )
    start = now_ms()
    harness.publish([_notice(n, start) for n in range(CUSTOMERS)])
    wait_until(
        lambda: worker.metric("tact_outbound_messages_total", channel="push") >= CUSTOMERS,
        60,
        "every notice sent by push",
    )
    delivered = [
        _event(f"d{n}", f"c{n}", "delivered", start + 1000, "push", message_id=f"n{n}")
        for n in range(0, CUSTOMERS, 2)
    ]
    chat = _event("i1", "c1", "chat_message", start + 1000, "messenger", direction="inbound")
    call = _event("i2", "c1", "inbound_call", start + 2000, "call", direction="inbound")
    harness.publish([*delivered, chat, call])
    wait_until(
        lambda: (
            worker.metric("tact_input_records_total", topic=harness.topics.events)
            >= len(delivered) + 2
        ),
        60,
        "the delivery reports read",
    )
    worker.kill()  # the checks fall due (10 s after the sends) while the worker is down
    worker.start()
    harness.wait_until_all_committed()  # liveness: every input partition read to its end
    wait_until(  # and the worker says so: every owned input partition 0 records behind
        lambda: (
            worker.series("tact_input_lag_records") == len(harness.topics.inputs) * PARTITIONS
            and worker.metric("tact_input_lag_records") == 0
        ),
        30,
        "no input lag reported",
    )
    silent = {f"n{n}~sms" for n in range(1, CUSTOMERS, 2)}
    wait_until(  # counted by the restarted process: it sent them, after the restart
        lambda: worker.metric("tact_outbound_messages_total", channel="sms") >= len(silent),
        60,
        "the undelivered pushes to fall back to sms",
    )
    worker.stop()

    t = harness.topics
    reader = TopicReader(harness.broker.bootstrap, [t.decisions, t.signals, *t.outbound.values()])
    reader.poll_until_quiet()
    messages = checks.no_message_sent_twice(reader, list(t.outbound.values()))
    assert {m["message_id"] for m in messages if m["channel"] == "sms"} == silent
    assert Counter(m["channel"] for m in messages) == {"push": CUSTOMERS, "sms": len(silent)}
    decisions = reader.values(t.decisions, "tact.Decision")
    checks.sent_matches_decisions(messages, decisions)
    fallbacks = [d for d in decisions if d["message_id"] in silent]
    assert sorted(d["reasons"][0] for d in fallbacks) == sorted(
        f"fallback_of:{m.split('~')[0]}" for m in silent
    )
    signals = reader.values(t.signals, "tact.Signal")
    assert [(s["from_channel"], s["to_channel"], s["events"]) for s in signals] == [
        ("messenger", "call", ["i1", "i2"])
    ]
    # what a person reads with `tact tail`: one customer's decisions, from their partition only
    printed = tail("decisions", "--customer", "c1", env=harness.env)
    assert [(d["message_id"], d["channel"]) for d in printed] == [("n1", "push"), ("n1~sms", "sms")]
    assert printed[1]["decided_at"].endswith("Z")  # times as ISO-8601


def tail(*args: str, env: dict[str, str]) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "app", "tail", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]
