"""The wire contract: Avro in the Confluent format, readable errors for bad bytes, state bytes."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import fastavro
import msgpack
import pytest

from app.codecs.avro import Schemas, WireError
from app.codecs.records import (
    RecordError,
    candidate_from_dict,
    decision_from_dict,
    decision_to_dict,
    outbound_from_dict,
    outbound_to_dict,
    to_millis,
)
from app.codecs.state import StateError, decode_state, encode_state, pack_state
from app.policy.model import Category, Urgency
from tests.builders import T0, at, candidate, decide, default_policy, event, on_event, state

SCHEMAS = Schemas.load()
CANDIDATE = {
    "message_id": "m1",
    "customer_id": "c1",
    "category": "promo",
    "audience": "mass",
    "priority": 3,
    "channels": ["sms", "email"],
    "urgency": "normal",
    "dedupe_key": "k",
    "created_at": T0,
    "expires_at": None,
    "template": "offer",
    "payload": {"amount": "100"},
}


def test_candidate_round_trip_in_the_wire_format():
    codec = SCHEMAS["tact.Candidate"]
    data = codec.encode(CANDIDATE)
    assert data[0] == 0 and struct.unpack(">I", data[1:5])[0] == codec.schema_id == 2
    assert codec.decode(data) == {**CANDIDATE, "purpose": None}  # a field with a default
    assert candidate_from_dict(codec.decode(data)).channels == ("sms", "email")


@pytest.mark.parametrize(
    "mangle,message",
    [
        (lambda d: d[:-3], "truncated record"),
        (
            lambda d: b"\x00\x00\x00\x00\x07" + d[5:],
            "schema id 7 is not tact.Candidate (expected id 2)",
        ),
        (lambda d: b'{"json": true}', "not in the Confluent wire format"),
        (lambda d: d + b"\x00\x00", "bytes left over"),
        (lambda d: d[:5] + b"\xff" * 40, "not a valid tact.Candidate Avro body"),
    ],
)
def test_bad_bytes_are_explained(mangle, message):
    codec = SCHEMAS["tact.Candidate"]
    with pytest.raises(WireError, match=message.replace("(", r"\(").replace(")", r"\)")):
        codec.decode(mangle(codec.encode(CANDIDATE)))


def test_oversized_input_is_refused_before_decoding():
    from app.codecs.avro import check_size

    with pytest.raises(WireError, match="the limit is 262,144"):
        check_size(b"\x00" * (300 * 1024))
    check_size(b"\x00" * 1024)


def test_unknown_enum_value_is_an_error_at_encode_and_decode():
    codec = SCHEMAS["tact.Candidate"]
    with pytest.raises(ValueError):
        codec.encode({**CANDIDATE, "category": "spam"})
    body = bytearray(codec.encode(CANDIDATE))
    # the category enum index follows message_id and customer_id: make it out of range
    index = 5 + 1 + 2 + 1 + 2
    body[index] = 0x7E
    with pytest.raises(WireError):
        codec.decode(bytes(body))


def test_decision_and_outbound_round_trip():
    step = decide(
        on_event(state(), event(), T0, default_policy()).state, candidate(), T0, default_policy()
    )
    decision, message = step.decisions[0], step.outbound[0]
    assert (
        decision_from_dict(
            SCHEMAS["tact.Decision"].decode(
                SCHEMAS["tact.Decision"].encode(decision_to_dict(decision))
            )
        )
        == decision
    )
    assert (
        outbound_from_dict(
            SCHEMAS["tact.OutboundMessage"].decode(
                SCHEMAS["tact.OutboundMessage"].encode(outbound_to_dict(message))
            )
        )
        == message
    )


def test_state_round_trip_with_everything_in_it():
    policy = default_policy()
    s = on_event(state(timezone="Europe/Berlin"), event(), T0, policy).state
    s = decide(s, candidate("a", dedupe_key="k"), T0, policy).state
    s = decide(s, candidate("b", urgency=Urgency.NORMAL, expires_at=at(30)), at(10), policy).state
    assert s.pending and s.sends and s.dedupe and s.recent
    decoded = decode_state(encode_state(s))
    assert decoded == s
    # A StrEnum equals its text, so equality alone would not notice a plain str coming back.
    assert all(type(held.candidate.category) is Category for held in decoded.pending)
    assert msgpack.unpackb(encode_state(s))[4] == {"email/promo": [T0]}  # times by send class


STATE_BYTES = """
from tests.builders import T0, candidate, decide, default_policy, state
from app.codecs.state import encode_state
from app.policy.model import Category
policy, s = default_policy(), state()
for i in range(8):
    c = candidate(
        f"m{7 - i}",
        dedupe_key=f"k{i}",
        channels=(("email", "sms", "push")[i % 3],),
        category=(Category.SERVICE, Category.TRANSACTIONAL)[i % 2],
    )
    s = decide(s, c, T0 + i // 2, policy).state
print(encode_state(s).hex())
"""


def test_a_states_bytes_do_not_depend_on_the_processs_string_hashing():
    """`decided`, `dedupe` and the sends are hash tries, whose order follows each process's
    string hashes; they are written in order, so the same state is the same bytes in any worker."""
    written = {
        subprocess.run(
            [sys.executable, "-c", STATE_BYTES],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(written) == 1
    fields = msgpack.unpackb(bytes.fromhex(written.pop()))
    # In (time, key) order: two decisions each millisecond.
    assert list(fields[5]) == [f"m{7 - i}" for i in (1, 0, 3, 2, 5, 4, 7, 6)]  # decided
    assert list(fields[6]) == [f"k{i}" for i in range(8)]  # dedupe
    assert list(fields[4]) == sorted(fields[4]) and len(fields[4]) == 6  # sends, by class


def test_a_decision_appended_to_the_bytes_before_is_the_state_packed_whole():
    """The decided map and the send class's times, across msgpack's sizes (a fixmap or fixarray
    holds 15; 16 take a 3-byte header), and with a decision and a send out of time order (not
    appended: packed whole)."""
    policy, s = default_policy(), state()
    packed = pack_state(s)
    times = [T0 + i for i in range(20)] + [T0 + 3]
    for i, when in enumerate(times):
        s = decide(s, candidate(f"m{i}", category=Category.SERVICE), when, policy).state
        packed = pack_state(s, packed)
        assert packed.data == encode_state(s)
        assert decode_state(packed.data) == s
    assert len(s.decided) == 21 and s.sends.times["email/service"][3:5] == (T0 + 3, T0 + 3)


def test_state_of_another_version_is_refused():
    with pytest.raises(StateError):
        decode_state(msgpack.packb([99, "c1"]))


@pytest.mark.parametrize(
    "value,expected", [("2026-11-18T12:00:00Z", T0), ("2026-11-18T13:00:00+01:00", T0), (T0, T0)]
)
def test_times(value, expected):
    assert to_millis(value) == expected


def test_time_without_offset_is_refused():
    with pytest.raises(ValueError, match="no UTC offset"):
        to_millis("2026-11-18T12:00:00")


def test_missing_field_names_it():
    with pytest.raises(RecordError, match="missing field 'template'"):
        candidate_from_dict({k: v for k, v in CANDIDATE.items() if k != "template"})


BEFORE_JOURNEYS = Path(__file__).parents[1] / "fixtures" / "schemas-before-journeys"


def _journey_records() -> tuple[dict[str, Any], dict[str, Any]]:
    from app.simulate import replay
    from tests.unit.test_journeys import POLICY, ev

    records = [
        state().profile,
        ev(1, "email_opened", T0 - 60_000, template="loan.intro"),
        ev(2, "application_submitted", T0, application_id="A1"),
    ]
    result = replay(enumerate(records, 1), POLICY, T0)
    return decision_to_dict(result.decisions[0]), outbound_to_dict(result.outbound[0])


@pytest.mark.parametrize("name", ["Decision", "OutboundMessage"])
def test_records_written_before_journeys_are_read_now_and_the_reverse(name):
    """Schemas change backward compatibly: an old writer's record reads with today's schema,
    and today's record reads with the old schema (consumers not yet upgraded)."""
    old = fastavro.parse_schema(json.loads((BEFORE_JOURNEYS / f"{name}.avsc").read_text()))
    new = fastavro.parse_schema(json.loads((Path("schemas") / f"{name}.avsc").read_text()))
    decision, message = _journey_records()
    record = decision if name == "Decision" else message
    assert record.get("journey") == "loan_application" or record["context"][0]["detail"]
    as_old = {k: v for k, v in record.items() if k in {f["name"] for f in old["fields"]}}
    if name == "OutboundMessage":
        as_old["context"] = [
            {k: v for k, v in c.items() if k != "detail"} for c in record["context"]
        ]
    read_new = _through(as_old, old, new)
    if name == "Decision":  # the fields journeys added take their defaults
        assert read_new["journey"] is None and read_new["step"] is None
    else:
        assert [c["detail"] for c in read_new["context"]] == [None] * len(record["context"])
    read_old = _through(record, new, old)
    assert set(read_old) == {f["name"] for f in old["fields"]}
    for unchanged in ("message_id", "customer_id"):
        assert read_new[unchanged] == read_old[unchanged] == record[unchanged]


def _through(record: dict[str, Any], writer: Any, reader: Any) -> dict[str, Any]:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, writer, record)
    buffer.seek(0)
    read: dict[str, Any] = fastavro.schemaless_reader(buffer, writer, reader)
    return read


def test_old_schemas_unchanged_apart_from_added_fields_with_defaults():
    for old_file in BEFORE_JOURNEYS.glob("*.avsc"):
        old = json.loads(old_file.read_text())
        new = json.loads((Path("schemas") / old_file.name).read_text())
        old_fields = {f["name"]: f for f in old["fields"]}
        new_fields = {f["name"]: f for f in new["fields"]}
        assert set(old_fields) <= set(new_fields), old_file.name
        for added in set(new_fields) - set(old_fields):
            assert "default" in new_fields[added], f"{old_file.name}: {added} needs a default"


BEFORE_CHANNELS = Path(__file__).parents[1] / "fixtures" / "schemas-before-channels"
BEFORE_EXPLAIN = Path(__file__).parents[1] / "fixtures" / "schemas-before-explain"
EARLIER = [(d, p.stem) for d in (BEFORE_CHANNELS, BEFORE_EXPLAIN) for p in sorted(d.glob("*.avsc"))]


@pytest.mark.parametrize(("before", "name"), EARLIER)
def test_records_written_before_the_new_channels_read_now_and_the_reverse(before, name):
    """The schemas as deployed before in_app, manager, purpose, segment, attributes and cost:
    every record their writers made reads with today's schemas (Schema Registry's
    BACKWARD_TRANSITIVE), and today's records that use only what the old schemas know read with
    them (consumers not yet upgraded)."""
    from fastavro.utils import generate_many

    old = fastavro.parse_schema(json.loads((before / f"{name}.avsc").read_text()))
    new = fastavro.parse_schema(json.loads((Path("schemas") / f"{name}.avsc").read_text()))
    added = {f["name"] for f in new["fields"]} - {f["name"] for f in old["fields"]}
    for record in generate_many(old, 20):
        as_written = _through(record, old, old)  # times as the reader gives them back
        read_new = _through(record, old, new)
        assert {k: v for k, v in read_new.items() if k not in added} == as_written
        defaults = {f["name"]: f.get("default") for f in new["fields"] if f["name"] in added}
        assert {k: read_new[k] for k in added} == defaults
        assert _through(read_new, new, old) == as_written


def test_the_channels_added_are_in_every_channel_enum():
    for path in Path("schemas").glob("*.avsc"):
        text = path.read_text()
        if '"name": "Channel"' in text:
            assert '"in_app", "manager"]' in text, path.name
