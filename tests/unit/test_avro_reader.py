"""The planned reader (app/codecs/avro_reader.py) reads what fastavro reads, for every schema."""

from __future__ import annotations

import io

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codecs.avro import Schemas, WireError
from app.codecs.avro_reader import Cursor, Truncated, plan_reader
from tests.unit.test_avro_writer import DECISION_WITHOUT_DEFAULTS, NAMES, fastavro_bytes, values

SCHEMAS = Schemas.load()


@pytest.mark.parametrize("name", NAMES)
def test_every_tact_schema_is_read_by_a_planned_reader(name):
    assert SCHEMAS[name].reader is not None


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_planned_reader_reads_what_fastavro_reads(name, data):
    codec = SCHEMAS[name]
    schema = codec.writer_schema
    body = fastavro_bytes(schema, data.draw(values(schema, schema["__named_schemas"])))
    cursor = Cursor(body, 0)
    assert plan_reader(codec.read_schema).read(cursor) == fastavro.schemaless_reader(
        io.BytesIO(body), codec.read_schema
    )
    assert cursor.pos == len(body)


@pytest.mark.parametrize("cut", [1, 5, 9, 17])
def test_a_truncated_body_is_refused_with_a_reason(cut):
    codec = SCHEMAS["tact.Decision"]
    data = codec.encode(DECISION_WITHOUT_DEFAULTS)
    with pytest.raises(Truncated):
        plan_reader(codec.read_schema).read(Cursor(data[5:-cut], 0))
    with pytest.raises(WireError, match="truncated"):
        codec.decode(data[:-cut])


def test_an_enum_or_union_index_past_its_end_is_refused():
    codec = SCHEMAS["tact.Decision"]
    data = bytearray(codec.encode(DECISION_WITHOUT_DEFAULTS))
    outcome_at = 5 + 1 + len("m1") + 1 + len("c1")  # after message_id and customer_id
    data[outcome_at] = 0x7E  # index 63
    with pytest.raises(WireError, match="index 63"):
        codec.decode(bytes(data))


def test_blocks_with_a_byte_size_are_read_as_fastavro_reads_them():
    """A writer may give each array or map block a negative count followed by its size."""
    schema = fastavro.parse_schema({"type": "array", "items": "long"})
    body = bytes([0x03, 0x04, 0x02, 0x04, 0x02, 0x06, 0x00])  # count -2, 2 bytes: 1, 2; then 3
    assert plan_reader(schema).read(Cursor(body, 0)) == [1, 2, 3]
    assert fastavro.schemaless_reader(io.BytesIO(body), schema) == [1, 2, 3]
