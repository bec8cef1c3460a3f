"""`tact simulate`: JSON Lines in, decisions out, with the worker's own decision code."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app.cli import main

LINES = [
    {
        "kind": "profile",
        "customer_id": "c1",
        "timezone": "Europe/Berlin",
        "consents": {"email": True, "sms": True},
        "reachable": {"email": True, "sms": True},
    },
    {
        "kind": "event",
        "event_id": "e1",
        "customer_id": "c1",
        "type": "email_opened",
        "occurred_at": "2026-11-20T10:00:00Z",
        "channel": "email",
    },
    {
        "kind": "candidate",
        "message_id": "m1",
        "customer_id": "c1",
        "category": "promo",
        "audience": "mass",
        "channels": ["push", "email"],
        "urgency": "normal",
        "created_at": "2026-11-20T10:05:00Z",
        "template": "offer",
    },
    {
        "kind": "candidate",
        "message_id": "m2",
        "customer_id": "c1",
        "category": "transactional",
        "audience": "personal",
        "channels": ["email"],
        "urgency": "normal",
        "created_at": "2026-11-20T22:06:00Z",
        "template": "statement",
    },
    {
        "kind": "candidate",
        "message_id": "m3",
        "customer_id": "nobody",
        "category": "promo",
        "audience": "mass",
        "channels": ["email"],
        "urgency": "normal",
        "created_at": "2026-11-20T22:07:00Z",
        "template": "offer",
    },
    {"kind": "nonsense"},
]


def run(tmp_path, lines, *extra):
    events = tmp_path / "in.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    out = tmp_path / "decisions.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--events",
            str(events),
            "--out",
            str(out),
            "--dead-letters",
            str(tmp_path / "dead.txt"),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()], result


def test_replay_writes_every_decision_and_releases_to_the_last_record(tmp_path):
    decisions, result = run(tmp_path, LINES)
    assert [(d["message_id"], d["outcome"], d["channel"]) for d in decisions] == [
        ("m1", "sent", "email"),
        ("m2", "deferred", None),
        ("m3", "suppressed", None),
    ]
    assert decisions[0]["reasons"] == ["push:no_consent"]
    assert decisions[1]["release_at"] == "2026-11-21T08:00:00.000Z"
    assert decisions[2]["reasons"] == ["unknown_customer"]  # a decision, not a dead letter
    dead = (tmp_path / "dead.txt").read_text()
    assert "line 5" not in dead and "line 6: kind 'nonsense'" in dead
    assert "3 decisions" in result.output


def test_until_advances_the_clock_and_releases_held_work(tmp_path):
    decisions, _ = run(
        tmp_path,
        LINES,
        "--until",
        "2026-11-21T09:00:00Z",
        "--state-out",
        str(tmp_path / "state.json"),
    )
    assert decisions[-1] == {
        **decisions[-1],
        "message_id": "m2",
        "outcome": "sent",
        "decided_at": "2026-11-21T08:00:00.000Z",
    }
    states = json.loads((tmp_path / "state.json").read_text())
    assert set(states) == {"c1", "nobody"} and states["c1"]["pending"] == []
    assert states["nobody"]["profile"] is None and list(states["nobody"]["decided"]) == ["m3"]


def test_a_bad_policy_file_is_reported_with_its_line(tmp_path):
    policy = tmp_path / "p.toml"
    policy.write_text('version = "x"\n[dedupe]\nwindow = "soon"\n')
    events = tmp_path / "in.jsonl"
    events.write_text("")
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--events",
            str(events),
            "--out",
            str(tmp_path / "o"),
            "--policy",
            str(policy),
        ],
    )
    assert result.exit_code == 1
    assert "p.toml:3: dedupe.window: 'soon' is not a duration" in result.output


def test_a_replay_in_another_process_gives_byte_identical_decisions_and_states(tmp_path):
    """Determinism that can fail: a second process iterates sets and maps in another order
    (PYTHONHASHSEED), so any output that depends on such an order differs between the two."""
    import os
    import random
    import subprocess
    import sys

    from app.traffic import activity, now_ms, random_profiles

    rng = random.Random(5)
    zones = ["UTC", "Europe/Berlin", "Asia/Tokyo"]
    records = random_profiles(rng, 30, zones) + activity(rng, 30, 1500, now_ms(), 3_600_000)
    events = tmp_path / "in.jsonl"
    events.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    outputs = []
    for seed in ("1", "2"):
        out, state = tmp_path / f"d{seed}.jsonl", tmp_path / f"s{seed}.json"
        command = ["-m", "app", "simulate", "--events", str(events), "--out", str(out)]
        subprocess.run(
            [sys.executable, *command, "--state-out", str(state)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
        )
        outputs.append((out.read_bytes(), state.read_bytes()))
    assert outputs[0] == outputs[1]
    assert outputs[0][0].count(b"\n") > 1000  # a real replay, with many decisions


def test_journeys_replay_with_their_transitions(tmp_path):
    lines = [
        LINES[0],
        {
            "kind": "event",
            "event_id": "e7",
            "customer_id": "c1",
            "type": "application_submitted",
            "occurred_at": "2026-11-20T10:00:00Z",
            "attributes": {"application_id": "A7"},
        },
        {
            "kind": "event",
            "event_id": "e8",
            "customer_id": "c1",
            "type": "application_withdrawn",
            "occurred_at": "2026-11-20T11:00:00Z",
            "attributes": {"application_id": "A7"},
        },
    ]
    journeys = tmp_path / "journeys.jsonl"
    decisions, _ = run(
        tmp_path,
        lines,
        "--policy",
        "deploy/policies/journeys.toml",
        "--journeys-out",
        str(journeys),
        "--state-out",
        str(tmp_path / "state.json"),
        "--until",
        "2026-11-30T00:00:00Z",
    )
    assert [(d["journey"], d["step"], d["outcome"]) for d in decisions] == [
        ("loan_application", "confirm", "sent")
    ]
    moved = [json.loads(line) for line in journeys.read_text().splitlines()]
    assert [(t["transition"], t["step"], t["at"]) for t in moved] == [
        ("entered", None, "2026-11-20T10:00:00.000Z"),
        ("step_sent", "confirm", "2026-11-20T10:00:00.000Z"),
        ("exited", None, "2026-11-20T11:00:00.000Z"),
    ]
    assert moved[2]["reason"] == "journey_exit:application_withdrawn"
    assert moved[0]["policy_version"].startswith("journeys-1+")
    assert json.loads((tmp_path / "state.json").read_text())["c1"]["journeys"] == []


def test_output_files_are_emptied_even_when_nothing_is_decided_and_all_dead_is_an_error(tmp_path):
    out = tmp_path / "decisions.jsonl"
    out.write_text("stale line from an earlier run\n")
    events = tmp_path / "in.jsonl"
    events.write_text(json.dumps({"kind": "candidate", "customer_id": "c1"}) + "\n")
    result = CliRunner().invoke(
        main, ["simulate", "--events", str(events), "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 1 and "every record was a dead letter" in result.output
    assert out.read_text() == ""
    # every missing field named at once
    assert "missing fields 'message_id', 'category', 'audience', 'urgency'" in result.output


def test_the_shipped_example_inputs_replay_cleanly(tmp_path):
    from pathlib import Path

    example = Path(__file__).parents[2] / "examples" / "inputs.jsonl"
    lines = [json.loads(line) for line in example.read_text().splitlines()]
    decisions, result = run(tmp_path, lines)
    assert "0 dead letters" in result.output
    assert {d["message_id"]: d["channel"] for d in decisions} == {"m1": "sms", "m2": "email"}


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("tact ")


def test_tail_knows_tacts_topics_and_shows_times_as_text():
    from app.tail import readable, schema_for

    assert schema_for("outbound.in_app") == "tact.OutboundMessage"
    assert schema_for("signals") == "tact.Signal"
    with pytest.raises(ValueError, match="not a Tact topic"):
        schema_for("nope")
    assert readable({"decided_at": 0, "key": b"c1"}) == {
        "decided_at": "1970-01-01T00:00:00.000Z",
        "key": "c1",
    }
