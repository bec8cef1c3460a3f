"""With a Schema Registry: Confluent's own serializer and deserializer and Tact agree in both
directions, and a producer on an older or newer compatible schema is read, not dead-lettered.
The registry is confluent-kafka's mock client, one instance shared by both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from app.codecs.avro import SCHEMAS_DIR, WireError
from app.codecs.records import candidate_from_dict, decision_to_dict
from app.codecs.registry import schemas_for
from app.config import Settings
from app.policy.model import Category, Decision, Outcome

BEFORE = Path(__file__).parents[1] / "fixtures" / "schemas-before-channels"
SETTINGS = Settings(topic_prefix="sr.")
CANDIDATE = {
    "message_id": "m1",
    "customer_id": "c1",
    "category": "promo",
    "audience": "mass",
    "priority": None,
    "channels": ["email"],
    "urgency": "normal",
    "dedupe_key": None,
    "created_at": 1_767_000_000_000,
    "expires_at": None,
    "template": "offer",
    "payload": {},
}


@pytest.fixture
def registry():
    return SchemaRegistryClient.new_client({"url": "mock://tact-test"})


def _confluent_bytes(registry, schema_text: str, record: dict) -> bytes:
    serializer = AvroSerializer(registry, schema_text, conf={"auto.register.schemas": True})
    topic = SETTINGS.topics.candidates
    return serializer(record, SerializationContext(topic, MessageField.VALUE))


def test_a_producer_on_the_schema_before_channels_is_read(registry):
    schemas = schemas_for(SETTINGS, registry)
    old = (BEFORE / "Candidate.avsc").read_text()
    data = _confluent_bytes(registry, old, CANDIDATE)
    assert int.from_bytes(data[1:5], "big") != schemas["tact.Candidate"].schema_id
    candidate = candidate_from_dict(schemas["tact.Candidate"].decode(data))
    assert (candidate.message_id, candidate.channels, candidate.purpose) == ("m1", ("email",), "")


def test_a_producer_a_version_ahead_is_read_and_its_new_field_ignored(registry):
    schemas = schemas_for(SETTINGS, registry)
    newer = json.loads((SCHEMAS_DIR / "Candidate.avsc").read_text())
    newer["fields"].append({"name": "campaign", "type": "string", "default": ""})
    data = _confluent_bytes(registry, json.dumps(newer), {**CANDIDATE, "campaign": "spring"})
    record = schemas["tact.Candidate"].decode(data)
    assert record["message_id"] == "m1" and "campaign" not in record


def test_a_writer_that_does_not_resolve_is_a_dead_letter_with_the_reason(registry):
    schemas = schemas_for(SETTINGS, registry)
    broken = json.loads((BEFORE / "Candidate.avsc").read_text())
    broken["fields"] = [f for f in broken["fields"] if f["name"] != "template"]  # required
    data = _confluent_bytes(registry, json.dumps(broken), CANDIDATE)
    with pytest.raises(WireError, match=r"does not resolve to tact\.Candidate"):
        schemas["tact.Candidate"].decode(data)


def test_confluent_reads_what_tact_writes(registry):
    schemas = schemas_for(SETTINGS, registry)
    decision = Decision(
        "m1", "c1", Outcome.SENT, "email", ("ok",), "v1", 1_767_000_000_000, Category.PROMO
    )
    data = schemas["tact.Decision"].encode(decision_to_dict(decision))
    read = AvroDeserializer(registry)(
        data, SerializationContext("sr.decisions", MessageField.VALUE)
    )
    assert read["message_id"] == "m1" and read["outcome"] == "sent" and read["channel"] == "email"
    subjects = registry.get_subjects()
    assert "sr.decisions-value" in subjects and "sr.outbound.sms-value" in subjects


def test_without_a_registry_only_the_static_ids_are_read():
    schemas = schemas_for(Settings())
    other = bytes([0, 0, 0, 0, 99]) + b"\x00"
    with pytest.raises(WireError, match=r"schema id 99 is not tact\.Candidate"):
        schemas["tact.Candidate"].decode(other)
