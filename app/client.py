"""Talking to Tact from the outside: publish inputs, read decisions and outbound messages.

Used by `tact produce`, `tact demo`, `tact bench` and the integration tests; an upstream system
would do the same with its own Kafka client and the schemas in `schemas/`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from app.codecs.avro import Schemas
from app.codecs.records import to_millis
from app.config import TopicNames
from app.stream import faust_private

_TIME_FIELDS = {"candidate": ("created_at", "expires_at"), "event": ("occurred_at",)}
_SCHEMA = {
    "candidate": "tact.Candidate",
    "event": "tact.CustomerEvent",
    "profile": "tact.CustomerProfile",
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "candidate": {
        "priority": None,
        "dedupe_key": None,
        "expires_at": None,
        "payload": {},
        "channels": [],  # with a purpose, the channel matrix decides
    },
    "event": {"channel": None, "attributes": {}},
    "profile": {"consents": {}, "reachable": {}, "preferred_channel": None},
}


_place = DefaultPartitioner()


def partition_of(customer_id: str, partitions: int) -> int:
    """A customer's partition of a topic keyed by customer_id: Kafka's default partitioner."""
    every = list(range(partitions))
    return int(_place(customer_id.encode(), every, every))


_NOT_FIELDS = ("kind", "deleted", "lane")  # JSON Lines keys that are not record fields


@dataclass(frozen=True)
class Encoded:
    topic: str
    key: bytes
    value: bytes | None
    timestamp_ms: int | None


def encode_input(obj: Mapping[str, Any], topics: TopicNames, schemas: Schemas) -> Encoded:
    """A JSON Lines input ({"kind": ..., fields}) as the Kafka record upstream would publish.
    A candidate with "lane": "urgent" goes to the urgent candidates topic."""
    kind = obj["kind"]
    topic = {"candidate": topics.candidates, "event": topics.events, "profile": topics.profiles}[
        kind
    ]
    if kind == "candidate" and obj.get("lane") == "urgent":
        topic = topics.urgent
    key = str(obj["customer_id"]).encode()
    if kind == "profile" and obj.get("deleted"):
        return Encoded(topic, key, None, None)
    record = {**_DEFAULTS[kind], **{k: v for k, v in obj.items() if k not in _NOT_FIELDS}}
    for field in _TIME_FIELDS.get(kind, ()):
        if record.get(field) is not None:
            record[field] = to_millis(record[field], field)
    timestamp = record.get(_TIME_FIELDS[kind][0]) if kind in _TIME_FIELDS else None
    return Encoded(topic, key, schemas[_SCHEMA[kind]].encode(record), timestamp)


class Publisher:
    """Publishes records keyed by customer_id, in order per customer."""

    def __init__(
        self,
        bootstrap_servers: str,
        linger_ms: int = 5,
        security: Mapping[str, Any] | None = None,
        compression_type: str | None = None,
    ) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            **(security or {}),
            linger_ms=linger_ms,
            max_batch_size=512 * 1024,
            compression_type=compression_type,
            acks="all",
        )

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def publish(self, records: Iterable[Encoded], wait: bool = True) -> int:
        futures = [
            await self.producer.send(r.topic, r.value, key=r.key, timestamp_ms=r.timestamp_ms)
            for r in records
        ]
        if wait:
            await asyncio.gather(*futures)
        return len(futures)

    async def publish_acked(self, records: Iterable[Encoded]) -> list[Any]:
        """Publish and return each record's metadata (topic, partition, offset) once acked."""
        futures = [
            await self.producer.send(r.topic, r.value, key=r.key, timestamp_ms=r.timestamp_ms)
            for r in records
        ]
        return list(await asyncio.gather(*futures))

    async def publish_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        await (await self.producer.send(topic, value, key=key))


@dataclass(frozen=True)
class Fetched:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


async def read_all(
    bootstrap_servers: str, topics: Iterable[str], idle_s: float = 2.0, timeout_s: float = 60.0
) -> list[Fetched]:
    """Everything on these topics, reading until nothing new arrives for `idle_s` seconds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in sorted(await _partitions(consumer, t))
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await _read_until_idle(consumer, idle_s, timeout_s)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(100):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        await faust_private.refresh_metadata(consumer)
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topic {topic} has no partitions")


async def _read_until_idle(
    consumer: AIOKafkaConsumer, idle_s: float, timeout_s: float
) -> list[Fetched]:
    loop = asyncio.get_running_loop()
    out: list[Fetched] = []
    deadline = loop.time() + timeout_s
    last_new = loop.time()
    while loop.time() < deadline and loop.time() - last_new < idle_s:
        batch = await consumer.getmany(timeout_ms=200, max_records=10000)
        for tp, records in batch.items():
            out.extend(
                Fetched(tp.topic, tp.partition, r.offset, r.key, r.value, r.timestamp)
                for r in records
            )
            last_new = loop.time()
    return out
