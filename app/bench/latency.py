"""Latency under a steady load: the time from producing a candidate to its outbound message
(or, through the plain loop, its forwarded copy) being readable. Optionally with a burst for one
customer produced meanwhile, to see what a hot customer does to everyone else."""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.bench.memory import cpu_seconds
from app.client import Encoded, encode_input
from app.clock import now_ms
from app.codecs.avro import Schemas
from app.codecs.records import iso
from app.config import TopicNames
from app.policy.model import CHANNELS

SETTLE_S = 2.0  # before the load: the reader settles at the end of its topics
DRAIN_S = 5.0  # after it, at most: the last records come through
# The load's producer waits this long to fill a batch, as upstream producers do by default
# (Kafka's Java client since 4.0, librdkafka since 1.5). At 1 ms its many small produce requests
# took up to a core of the broker, which shares this machine with the worker.
LOAD_LINGER_MS = 5


@dataclass
class Load:
    bootstrap: str
    topics: TopicNames
    schemas: Schemas
    rate: float  # candidates per second
    customers: int
    read_topics: list[str]
    read_schema: str  # what the read topics carry, each with the candidate's message_id
    seconds: float = 10.0
    burst: list[Encoded] = field(default_factory=list)  # produced at once when the load starts
    prefix: str = "lat"  # of the message ids: each run its own (Tact decides an id once)
    lane: str = ""  # "urgent": the load goes to the urgent candidates topic
    busy_pid: int = 0  # a process whose CPU share over the load is measured (0: none)


class Latency(NamedTuple):
    p50_ms: float
    p99_ms: float
    # `busy_pid`'s CPU time over the wall time, from the first candidate sent until the last
    # was read back (or DRAIN_S ran out): near 1, the process could not keep up with the load.
    busy: float
    # The broker's own part: from sending a candidate to the broker acknowledging it (ms).
    ack_p50_ms: float = 0.0
    ack_p99_ms: float = 0.0


async def latency(load: Load) -> Latency:
    """p50 and p99 in ms of the load's candidates, produce -> read back."""
    consumer = AIOKafkaConsumer(
        *load.read_topics,
        bootstrap_servers=load.bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    producer = AIOKafkaProducer(bootstrap_servers=load.bootstrap, linger_ms=LOAD_LINGER_MS)
    await consumer.start()
    await producer.start()
    await asyncio.sleep(SETTLE_S)
    sent_at: dict[str, float] = {}
    seen: list[float] = []
    acked: list[float] = []
    records = _encoded_load(load)
    reader = asyncio.create_task(_read(consumer, load, sent_at, seen))
    burst = asyncio.create_task(_send_all(load.bootstrap, load.burst))
    cpu_before, started = cpu_seconds(load.busy_pid), time.perf_counter()
    # This process holds the bench's records, hundreds of thousands of objects: a full
    # collection walking them stopped this loop, the sender and reader being timed, for about
    # 200 ms in a run. Frozen, the collector looks only at what the run itself makes.
    gc.freeze()
    try:
        await _send_paced(producer, records, load.rate, sent_at, acked, load.prefix)
        await burst
        await _drained(seen, len(records))
        busy = (cpu_seconds(load.busy_pid) - cpu_before) / (time.perf_counter() - started)
    finally:
        gc.unfreeze()
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    if not seen:
        raise RuntimeError(
            f"nothing arrived on {', '.join(load.read_topics)} during the latency run"
        )
    seen.sort()
    acked.sort()
    acked = acked or [0.0]
    return Latency(
        percentile(seen, 0.5),
        percentile(seen, 0.99),
        busy,
        percentile(acked, 0.5),
        percentile(acked, 0.99),
    )


async def _drained(seen: list[float], sent: int) -> None:
    """Until every record sent was seen, or DRAIN_S passed (a candidate that is not sent is
    never seen)."""
    ends = time.perf_counter() + DRAIN_S
    while len(seen) < sent and time.perf_counter() < ends:
        await asyncio.sleep(0.05)


def percentile(sorted_values: list[float], share: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * share))]


def _encoded_load(load: Load) -> list[Encoded]:
    """Encoded before the clock starts: the load generator shares the machine with the worker
    and the broker, so it should spend its CPU on sending, not on Avro."""
    return [
        encode_input(
            {
                **latency_candidate(f"{load.prefix}-{i}", f"c{i % load.customers}"),
                "lane": load.lane,
            },
            load.topics,
            load.schemas,
        )
        for i in range(int(load.rate * load.seconds))
    ]


async def _read(
    consumer: AIOKafkaConsumer, load: Load, sent_at: dict[str, float], seen: list[float]
) -> None:
    codec, marker = load.schemas[load.read_schema], load.prefix.encode()
    while True:
        for records in (await consumer.getmany(timeout_ms=50)).values():
            now = time.perf_counter()
            for record in records:
                # Only the load's own records are decoded: this process shares the machine with
                # the worker, and during a campaign most records it reads are the campaign's.
                if record.value is None or marker not in record.value:
                    continue
                message_id = codec.decode(record.value)["message_id"]
                if message_id in sent_at:
                    seen.append((now - sent_at[message_id]) * 1000)


async def _send_paced(
    producer: AIOKafkaProducer,
    records: list[Encoded],
    rate: float,
    sent_at: dict[str, float],
    acked: list[float],
    prefix: str,
) -> None:
    started, sent = time.perf_counter(), 0
    while sent < len(records):
        due = min(len(records), int((time.perf_counter() - started) * rate) + 1)
        for i in range(sent, due):
            at = sent_at[f"{prefix}-{i}"] = time.perf_counter()
            ack = await producer.send(records[i].topic, records[i].value, key=records[i].key)
            ack.add_done_callback(lambda _, at=at: acked.append((time.perf_counter() - at) * 1e3))
        sent = due
        await asyncio.sleep(0.001)


async def _send_all(bootstrap: str, records: list[Encoded]) -> None:
    if not records:
        return
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(r.topic, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def campaign_candidate(message_id: str, customer_id: str) -> dict[str, Any]:
    """A promo candidate of a campaign, on the candidates topic."""
    return {
        **latency_candidate(message_id, customer_id),
        "category": "promo",
        "audience": "mass",
        "channels": ["email", "push"],
        "urgency": "normal",
        "template": "sale",
    }


def latency_candidate(message_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "kind": "candidate",
        "message_id": message_id,
        "customer_id": customer_id,
        "category": "service",
        "audience": "personal",
        "channels": list(CHANNELS),
        "urgency": "immediate",
        "created_at": iso(now_ms()),
        "template": "code",
    }
