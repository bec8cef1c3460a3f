"""`tact export`: the input topics of a time range as the JSON Lines that simulate and whatif read.

Records are chosen by their Kafka timestamp (Tact's producers set it to the record's own time:
created_at, occurred_at) in [since, until). Each partition is read in its own order and the
partitions are merged by timestamp, so every customer's records keep the order they were
published in. A customer's profile as it stood at `since` (the last one published before it) comes
first: without it the range's candidates would be decided for an unknown customer.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from app.codecs.avro import Schemas
from app.codecs.registry import schemas_for
from app.config import Settings
from app.kafka_security import client_options
from app.tail import IDLE_S, readable

KINDS = {"profiles": "profile", "events": "event", "candidates": "candidate"}
SCHEMAS = {
    "profile": "tact.CustomerProfile",
    "event": "tact.CustomerEvent",
    "candidate": "tact.Candidate",
}


@dataclass(frozen=True, order=True)
class Exported:
    timestamp: int
    rank: int  # profiles, events, candidates: the order of records with the same timestamp
    partition: int
    offset: int
    kind: str
    key: bytes | None
    value: bytes | None


async def export(
    settings: Settings,
    since_ms: int,
    until_ms: int,
    topics: Iterable[str],
    write: Callable[[dict[str, Any]], None],
) -> Counter[str]:
    """Write the range's inputs, in order; how many records of each kind."""
    schemas = schemas_for(settings)
    wanted = [t for t in KINDS if t in set(topics)]
    names = {getattr(settings.topics, t): KINDS[t] for t in wanted}
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        **client_options(settings),
    )
    await consumer.start()
    try:
        partitions = _partitions(consumer, names)
        consumer.unsubscribe()
        consumer.assign(partitions)
        await _seek(consumer, partitions, names, since_ms)
        fetched = await _read(consumer, partitions)
    finally:
        await consumer.stop()
    counts: Counter[str] = Counter()
    for record in _in_order(fetched, names, since_ms, until_ms):
        write(_as_input(record, schemas))
        counts[record.kind] += 1
    return counts


def _partitions(consumer: AIOKafkaConsumer, names: dict[str, str]) -> list[TopicPartition]:
    out = []
    for name in names:
        found = consumer.partitions_for_topic(name)
        if not found:
            raise ValueError(f"topic {name!r} does not exist on the broker")
        out += [TopicPartition(name, p) for p in sorted(found)]
    return out


async def _seek(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    names: dict[str, str],
    since_ms: int,
) -> None:
    """Profiles from their start (for each customer's profile at `since`), the rest from the
    first record at `since` (where the broker cannot say, from the start: filtered anyway)."""
    await consumer.seek_to_beginning(*partitions)
    later = [tp for tp in partitions if names[tp.topic] != "profile"]
    try:
        offsets = await consumer.offsets_for_times({tp: since_ms for tp in later})
    except KafkaError:
        return
    for tp, found in offsets.items():
        if found is None:
            await consumer.seek_to_end(tp)
        else:
            consumer.seek(tp, found.offset)


async def _read(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, list[Any]]:
    """Every record up to the end each partition has now. The embedded broker can report an end
    short of the last records (DESIGN.md), so reading goes on until nothing arrives for IDLE_S."""
    ends = await consumer.end_offsets(partitions)
    out: dict[TopicPartition, list[Any]] = {tp: [] for tp in partitions}
    loop = asyncio.get_running_loop()
    quiet_since = loop.time()
    while True:
        batch = await consumer.getmany(timeout_ms=200, max_records=20_000)
        for tp, records in batch.items():
            out[tp].extend(records)
        now = loop.time()
        if batch:
            quiet_since = now
        behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
        if not behind and now - quiet_since >= IDLE_S:
            return out


def _in_order(
    fetched: dict[TopicPartition, list[Any]], names: dict[str, str], since_ms: int, until_ms: int
) -> Iterator[Exported]:
    ranks = {kind: rank for rank, kind in enumerate(KINDS.values())}
    earlier: dict[bytes | None, Exported] = {}  # each customer's last profile before `since`
    streams = []
    for tp, records in sorted(fetched.items()):
        kind = names[tp.topic]
        stream = []
        for r in records:
            entry = Exported(r.timestamp, ranks[kind], tp.partition, r.offset, kind, r.key, r.value)
            if r.timestamp < since_ms:
                if kind == "profile":
                    earlier[r.key] = entry
            elif r.timestamp < until_ms:
                stream.append(entry)
        streams.append(stream)
    yield from sorted(e for e in earlier.values() if e.value is not None)
    # Each partition's stream is in offset order: merging keeps it (a customer's records keep
    # their order) and orders records across partitions by timestamp.
    yield from heapq.merge(*streams, key=lambda e: (e.timestamp, e.rank))


def _as_input(record: Exported, schemas: Schemas) -> dict[str, Any]:
    if record.value is None:  # a tombstone: the profile was deleted
        customer = record.key.decode() if record.key else ""
        return {"kind": "profile", "customer_id": customer, "deleted": True}
    fields = readable(schemas[SCHEMAS[record.kind]].decode(record.value))
    return {"kind": record.kind, **fields}
