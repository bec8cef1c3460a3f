"""Kafka records to the core's inputs, and the core's results to Kafka records.

Nothing here decides: an input is decoded or refused (a dead letter with the reason), and every
decision, outbound message and dead letter becomes the record its topic carries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from app.codecs.avro import MAX_RECORD_BYTES, AvroCodec, Schemas, WireError, check_size
from app.codecs.records import (
    RecordError,
    candidate_from_dict,
    decision_to_dict,
    event_from_dict,
    outbound_to_dict,
    profile_from_dict,
    signal_to_dict,
    transition_to_dict,
)
from app.config import TopicNames
from app.policy.engine import Input, ProfileDeleted
from app.policy.model import Decision, OutboundMessage, Signal, Transition
from app.stream.io import OutRecord


class KeyedBytes(Protocol):
    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class RawRecord(KeyedBytes, Protocol):
    """What Kafka hands over: aiokafka's ConsumerRecord has these."""

    @property
    def offset(self) -> int: ...


class Unusable(ValueError):
    """An input record that cannot be decided; `kind` labels the dead-letter metric."""

    def __init__(self, problem: str, kind: str) -> None:
        super().__init__(problem)
        self.kind = kind


Builder = Callable[[dict[str, Any]], Input]


class InputDecoder:
    """Per input topic: its Avro codec, and what turns the decoded dict into the core's value."""

    def __init__(self, topics: TopicNames, schemas: Schemas, max_bytes: int) -> None:
        self.profiles = topics.profiles
        self.max_bytes = max_bytes
        self.by_topic: dict[str, tuple[AvroCodec, Builder]] = {
            topics.profiles: (schemas["tact.CustomerProfile"], profile_from_dict),
            topics.events: (schemas["tact.CustomerEvent"], event_from_dict),
            topics.urgent: (schemas["tact.Candidate"], candidate_from_dict),
            topics.candidates: (schemas["tact.Candidate"], candidate_from_dict),
        }

    def decode(self, topic: str, record: KeyedBytes) -> Input:
        """The core's input, or Unusable with what is wrong and how to fix it."""
        try:
            item = self._decode(topic, record)
        except (WireError, RecordError) as exc:
            raise Unusable(str(exc), "undecodable") from exc
        key = record.key.decode(errors="replace") if record.key is not None else None
        if key != item.customer_id:
            raise Unusable(
                f"key {key!r} is not the customer_id {item.customer_id!r}: "
                "key every record by customer_id",
                "wrong_key",
            )
        return item

    def _decode(self, topic: str, record: KeyedBytes) -> Input:
        codec, build = self.by_topic[topic]
        check_size(record.value, self.max_bytes)
        if record.value is None and topic == self.profiles and record.key:
            return ProfileDeleted(record.key.decode(errors="replace"))
        return build(codec.decode(record.value))


class OutputEncoder:
    """The core's results as the records of Tact's output topics."""

    def __init__(
        self, topics: TopicNames, schemas: Schemas, clock: Callable[[], int], policy_version: str
    ) -> None:
        self.topics = topics
        self.clock = clock
        self.policy_version = policy_version
        self.transition_codec = schemas["tact.JourneyTransition"]
        self.signal_codec = schemas["tact.Signal"]
        self.decision_codec = schemas["tact.Decision"]
        self.outbound_codec = schemas["tact.OutboundMessage"]
        self.dead_letter_codec = schemas["tact.DeadLetter"]

    def decision(self, partition: int, decision: Decision) -> OutRecord:
        value = self.decision_codec.encode_value(decision, decision_to_dict)
        return OutRecord(self.topics.decisions, partition, decision.customer_id.encode(), value)

    def outbound(self, partition: int, message: OutboundMessage) -> OutRecord:
        value = self.outbound_codec.encode_value(message, outbound_to_dict)
        topic = self.topics.outbound[message.channel]
        return OutRecord(topic, partition, message.customer_id.encode(), value)

    def transition(self, partition: int, transition: Transition) -> OutRecord:
        value = self.transition_codec.encode(transition_to_dict(transition, self.policy_version))
        return OutRecord(self.topics.journeys, partition, transition.customer_id.encode(), value)

    def signal(self, partition: int, signal: Signal) -> OutRecord:
        value = self.signal_codec.encode(signal_to_dict(signal))
        return OutRecord(self.topics.signals, partition, signal.customer_id.encode(), value)

    def dead_letter(self, topic: str, partition: int, record: RawRecord, error: str) -> OutRecord:
        """The original bytes (cut to fit a produce request) with the error and where it was."""
        key = record.key[:MAX_RECORD_BYTES] if record.key else record.key
        original = record.value
        if original is not None and len(original) > MAX_RECORD_BYTES:
            error += (
                f" (the dead letter keeps the first {MAX_RECORD_BYTES:,} of "
                f"{len(original):,} bytes; the rest is at the source offset)"
            )
            original = original[:MAX_RECORD_BYTES]
        letter = {
            "source_topic": topic,
            "source_partition": partition,
            "source_offset": record.offset,
            "key": key,
            "value": original,
            "error": error,
            "failed_at": self.clock(),
        }
        return OutRecord(
            self.topics.dead_letters, partition, key, self.dead_letter_codec.encode(letter)
        )
