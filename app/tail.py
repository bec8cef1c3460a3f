"""`tact tail TOPIC`: Tact's topics decoded, one JSON line per record, as a person reads them.

TOPIC is a name without the prefix (decisions, outbound.sms, journeys, signals, customer.events
...). With --customer only that customer's partition is read (records are keyed by customer_id,
and Kafka's default partitioner places a key), and only their records are printed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.client import partition_of
from app.codecs.records import iso
from app.codecs.registry import schemas_for
from app.config import Settings
from app.kafka_security import client_options

IDLE_S = 1.0

SCHEMA_OF = {
    "customer.events": "tact.CustomerEvent",
    "messages.candidates": "tact.Candidate",
    "messages.candidates.urgent": "tact.Candidate",
    "customer.profiles": "tact.CustomerProfile",
    "decisions": "tact.Decision",
    "journeys": "tact.JourneyTransition",
    "signals": "tact.Signal",
    "tact.dead-letters": "tact.DeadLetter",
}
TIME_FIELDS = (
    "occurred_at",
    "created_at",
    "expires_at",
    "decided_at",
    "release_at",
    "sent_at",
    "at",
    "failed_at",
)


def schema_for(topic: str) -> str:
    if topic.startswith("outbound."):
        return "tact.OutboundMessage"
    if topic not in SCHEMA_OF:
        known = ", ".join([*SCHEMA_OF, "outbound.<channel>"])
        raise ValueError(f"{topic!r} is not a Tact topic: use one of {known}")
    return SCHEMA_OF[topic]


def readable(record: dict[str, Any]) -> dict[str, Any]:
    """Times as ISO-8601, bytes as text where they are text."""
    out = {}
    for key, value in record.items():
        if key in TIME_FIELDS and isinstance(value, int):
            value = iso(value)
        elif isinstance(value, bytes):
            value = value.decode(errors="replace")
        out[key] = value
    return out


async def tail(
    settings: Settings,
    topic: str,
    customer: str | None,
    follow: bool,
    say: Callable[[str], None],
) -> int:
    """Print the topic's records from its start (to its end, or on, following); how many."""
    codec = schemas_for(settings)[schema_for(topic)]
    name = settings.topic_prefix + topic
    # Named at the start so that its metadata is fetched; then read by partition, not as a group.
    consumer = AIOKafkaConsumer(
        name,
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **client_options(settings),
    )
    try:
        await consumer.start()
        partitions = _partitions(consumer, name, customer)
        consumer.unsubscribe()
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        printed = 0
        key = customer.encode() if customer is not None else None
        loop = asyncio.get_running_loop()
        quiet_since = loop.time()
        # Past the reported ends, on until nothing arrives for IDLE_S: the embedded broker can
        # report an end short of a batch's last records (DESIGN.md).
        while (
            follow
            or [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            or loop.time() - quiet_since < IDLE_S
        ):
            batch = await consumer.getmany(timeout_ms=200)
            if batch:
                quiet_since = loop.time()
            for records in batch.values():
                for record in records:
                    if record.value is None or (key is not None and record.key != key):
                        continue
                    say(json.dumps(readable(codec.decode(record.value)), ensure_ascii=False))
                    printed += 1
        return printed
    finally:
        await consumer.stop()


def _partitions(
    consumer: AIOKafkaConsumer, name: str, customer: str | None
) -> list[TopicPartition]:
    found = sorted(consumer.partitions_for_topic(name) or ())
    if not found:
        raise ValueError(f"topic {name!r} does not exist on the broker")
    if customer is None:
        return [TopicPartition(name, p) for p in found]
    return [TopicPartition(name, found[partition_of(customer, len(found))])]
