"""`tact export` on the real broker: the inputs of a time range come back as the JSON Lines they
were published from, and whatif on the export says what it says on the original."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from app.cli import main
from app.codecs.records import iso
from app.simulate import parse_record
from app.traffic import DAY_MIX, activity, now_ms, random_profiles
from app.whatif import run_whatif

pytestmark = pytest.mark.integration

CUSTOMERS, RECORDS = 300, 3000
CAPS = 'version = "{0}"\n[[caps]]\nname = "daily"\nlimit = {0}\nwindow = "24h"\n'


def _export(harness, since: int, until: int, path) -> list[dict]:
    args = [
        "export",
        "--since",
        iso(since),
        "--until",
        iso(until),
        "--out",
        str(path),
        "--broker",
        harness.broker.url,
        "--topic-prefix",
        harness.prefix,
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in path.read_text().splitlines()]


def _per_customer(records: list[dict]) -> dict[str, list]:
    """Each customer's inputs, in order, as the core reads them."""
    out: dict[str, list] = {}
    for record in records:
        out.setdefault(record["customer_id"], []).append(parse_record(record))
    return out


def test_export_round_trips_the_topics_and_whatif_agrees(harness, tmp_path):
    rng = random.Random(3)
    start = now_ms() + 5_000  # after the profiles' own publish time, as live traffic would be
    profiles = random_profiles(rng, CUSTOMERS, ["UTC", "Europe/Berlin"])
    records = profiles + activity(rng, CUSTOMERS, RECORDS, start, 60_000, mix=DAY_MIX)
    harness.publish(profiles)
    harness.publish(records[CUSTOMERS:])
    original = tmp_path / "original.jsonl"
    original.write_text("".join(json.dumps(r) + "\n" for r in records))

    exported = _export(harness, start - 3_600_000, start + 3_600_000, tmp_path / "all.jsonl")
    assert len(exported) == len(records)
    assert _per_customer(exported) == _per_customer(records)

    policies = []
    for limit in (2, 1):
        policies.append(tmp_path / f"cap{limit}.toml")
        policies[-1].write_text(CAPS.format(limit))
    from_topics = run_whatif(tmp_path / "all.jsonl", policies)
    from_file = run_whatif(original, policies)
    for a, b in zip(from_topics, from_file, strict=True):
        assert a.outcomes == b.outcomes and a.sends_per_customer == b.sends_per_customer
    assert from_topics[0].outcomes["sent"] > from_topics[1].outcomes["sent"]

    # A later range: each customer's profile as it stood first, then only the range's records.
    middle = start + 30_000
    late = _export(harness, middle, start + 3_600_000, tmp_path / "late.jsonl")
    kinds = [r["kind"] for r in late]
    assert kinds[:CUSTOMERS] == ["profile"] * CUSTOMERS
    assert "profile" not in kinds[CUSTOMERS:]
    in_range = [
        r
        for r in records[CUSTOMERS:]
        if (r.get("created_at") or r.get("occurred_at")) >= iso(middle)
    ]
    assert len(late) - CUSTOMERS == len(in_range)
