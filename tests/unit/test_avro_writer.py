"""The planned writer (app/codecs/avro_writer.py) writes fastavro's bytes, for every schema."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codecs.avro import Schemas
from app.codecs.avro_writer import Unplannable, plan
from app.codecs.records import (
    decision_from_dict,
    decision_to_dict,
    outbound_from_dict,
    outbound_to_dict,
)

SCHEMAS = Schemas.load()
NAMES = sorted(
    [
        "tact.Candidate",
        "tact.CustomerEvent",
        "tact.CustomerProfile",
        "tact.Decision",
        "tact.OutboundMessage",
        "tact.JourneyTransition",
        "tact.Signal",
        "tact.DeadLetter",
    ]
)
PRIMITIVES = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=20),
    "string": st.text(max_size=12),
}


def values(schema: Any, named: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Any datum of this schema."""
    if isinstance(schema, str):
        return PRIMITIVES[schema] if schema in PRIMITIVES else values(named[schema], named)
    if isinstance(schema, list):
        return st.one_of(*(values(branch, named) for branch in schema))
    kind = schema["type"]
    if kind == "record":
        fields = {f["name"]: values(f["type"], named) for f in schema["fields"]}
        return st.fixed_dictionaries(fields)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(values(schema["items"], named), max_size=4)
    if kind == "map":
        return st.dictionaries(st.text(max_size=6), values(schema["values"], named), max_size=3)
    return values(kind, named)


DECISION_WITHOUT_DEFAULTS = {  # only the fields that have no default
    "message_id": "m1",
    "customer_id": "c1",
    "outcome": "sent",
    "reasons": [],
    "policy_version": "v",
    "decided_at": 1,
    "category": "promo",
}


def fastavro_bytes(schema: Any, record: Any) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, schema, record)
    return out.getvalue()


@pytest.mark.parametrize("name", NAMES)
def test_every_tact_schema_is_planned(name):
    assert SCHEMAS[name].planned is not None


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_planned_writer_writes_fastavros_bytes(name, data):
    schema = SCHEMAS[name].writer_schema
    record = data.draw(values(schema, schema["__named_schemas"]))
    body = bytearray()
    plan(schema).write(body, record)
    assert bytes(body) == fastavro_bytes(schema, record)
    assert SCHEMAS[name].decode(SCHEMAS[name].encode(record)) is not None


def test_a_field_left_out_takes_its_default_or_is_refused():
    codec = SCHEMAS["tact.Decision"]
    record = dict(DECISION_WITHOUT_DEFAULTS)
    assert codec.encode(record)[5:] == fastavro_bytes(codec.writer_schema, record)
    with pytest.raises(ValueError, match="customer_id"):
        codec.encode({k: v for k, v in record.items() if k != "customer_id"})


@pytest.mark.parametrize(
    ("field", "value"),
    [("outcome", "maybe"), ("decided_at", "soon"), ("reasons", "a"), ("customer_id", None)],
)
def test_a_value_of_the_wrong_type_is_refused_not_written(field, value):
    record = {**DECISION_WITHOUT_DEFAULTS, field: value}
    with pytest.raises((TypeError, ValueError)):
        SCHEMAS["tact.Decision"].encode(record)


def test_a_union_of_more_than_null_and_one_type_is_left_to_fastavro():
    with pytest.raises(Unplannable):
        plan(
            fastavro.parse_schema(
                {
                    "type": "record",
                    "name": "R",
                    "fields": [{"name": "x", "type": ["null", "string", "long"]}],
                }
            )
        )


@pytest.mark.parametrize(
    ("name", "from_dict", "to_dict"),
    [
        ("tact.Decision", decision_from_dict, decision_to_dict),
        ("tact.OutboundMessage", outbound_from_dict, outbound_to_dict),
    ],
)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_value_is_written_as_its_dict_is(name, from_dict, to_dict, data):
    """The worker writes decisions and outbound messages from the core's values, no dict built."""
    codec = SCHEMAS[name]
    schema = codec.writer_schema
    value = from_dict(data.draw(values(schema, schema["__named_schemas"])))
    assert codec.encode_value(value, to_dict) == codec.encode(to_dict(value))
