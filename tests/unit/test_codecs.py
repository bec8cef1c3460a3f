"""The wire contract: Avro in the Confluent format, readable errors for bad bytes, state bytes."""

from __future__ import annotations

import struct

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
from app.codecs.state import StateError, decode_state, encode_state
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
    assert codec.decode(data) == CANDIDATE
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
