"""The worker's own path in this process, with the broker and RocksDB in memory.

Between the in-process ceiling (each record's work done once: stages.py) and the engine (a
worker on the broker): the bench's records go through Tact's processor in batches as a fetch
hands them over, and each batch is made durable as the worker makes it, its outputs encoded,
every customer it changed packed and written with the checkpoint, the state cache and the
metrics kept. The processor is built by `build_app` on the in-memory store, so only Kafka
(MemoryIO), RocksDB (MemoryStore) and Faust's consumer and agent are left out. So engine / this
rate is what Kafka, Faust and the worker's threads take, and this rate / the ceiling what making
every batch durable costs in CPU.

The latency load's codes (one immediate service candidate to each customer in turn, on the urgent
topic) are timed apart, per code, fetched in the order they were sent, as the latency runs send
them (a batch holds each of the bench's 10,000 customers once at most): each is a decision, an
outbound message, a send to remember and a state write, more than a bench record's work, and the
latency runs send them at half the engine's rate. One thread does all of it, so its time is its
CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass

from aiokafka.structs import ConsumerRecord

from app.bench.latency import latency_candidate
from app.client import Encoded, encode_input, partition_of
from app.codecs.avro import Schemas
from app.collector import collector_for_deciding
from app.config import Settings, TopicNames
from app.stream.app import build_app
from app.stream.consumer import InputRun
from app.stream.io import MemoryIO
from app.stream.processor import Processor

CODE_BATCH = 2_000  # codes per batch: what the worker decided at a time under the latency load


@dataclass
class ShellCosts:
    records_per_s: float  # the bench's records through the processor
    code_us: float  # microseconds per latency code
    decisions: int  # decision records written (every candidate's and every code's)


def shell_costs(
    encoded: list[Encoded],
    customers: int,
    topic_prefix: str,
    schemas: Schemas,
    partitions: int,
    codes: int = 20_000,
) -> ShellCosts:
    """The bench's records, then `codes` latency codes, through the worker's processor."""
    settings = Settings(
        store="memory://", topic_prefix=topic_prefix, partitions=partitions, metrics_port=0
    )
    topics = settings.topics
    batches = as_fetched(encoded, topics, partitions, settings.fetch_max_records)
    code_records = [
        encode_input(
            {**latency_candidate(f"shell-code-{i}", f"c{i % customers}"), "lane": "urgent"},
            topics,
            schemas,
        )
        for i in range(codes)
    ]
    code_batches = as_sent(code_records, partitions, CODE_BATCH)
    io = MemoryIO()
    processor = build_app(settings, io=io).processor
    with collector_for_deciding():  # as the worker runs (the processor turns it off per batch)
        seconds, code_seconds = asyncio.run(
            _time_phases(processor, partitions, batches, code_batches)
        )
    return ShellCosts(
        round(len(encoded) / seconds),
        round(code_seconds * 1e6 / max(codes, 1), 2),
        len(io.values(topics.decisions)),
    )


async def _time_phases(
    processor: Processor, partitions: int, *phases: list[list[InputRun]]
) -> list[float]:
    """Seconds each phase's batches took, decided and made durable one after the other."""
    processor.assign(range(partitions))
    await processor.process([])  # the partitions made ready first, as a worker's first fetch
    spent = []
    for batches in phases:
        started = time.perf_counter()
        for batch in batches:
            await processor.process(batch)
        spent.append(time.perf_counter() - started)
    return spent


def as_fetched(
    encoded: list[Encoded], topics: TopicNames, partitions: int, per_fetch: int
) -> list[list[InputRun]]:
    """The records as the worker's fetches hand over a backlog: each in the partition the
    producer's partitioner puts it in, topic by topic in the order the worker reads them, and a
    fetch of at most `per_fetch` records takes partition after partition."""
    logs: dict[tuple[str, int], list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
    for record in placed(encoded, partitions):
        logs[(record.topic, record.partition)].append(record)
    fetches: list[list[InputRun]] = []
    room = 0
    for topic in topics.inputs:
        for partition in range(partitions):
            records = logs.get((topic, partition), [])
            while records:
                if room == 0:
                    fetches.append([])
                    room = per_fetch
                taken = records[:room]
                fetches[-1].append(InputRun(topic, partition, taken))
                records, room = records[len(taken) :], room - len(taken)
    return fetches


def as_sent(encoded: list[Encoded], partitions: int, per_fetch: int) -> list[list[InputRun]]:
    """The records as fetches hand over a load sent at a steady rate: each fetch the next
    `per_fetch` records in the order they were sent, partition by partition."""
    in_order = placed(encoded, partitions)
    fetches = []
    for start in range(0, len(in_order), per_fetch):
        runs: dict[tuple[str, int], list[ConsumerRecord[bytes, bytes]]] = defaultdict(list)
        for record in in_order[start : start + per_fetch]:
            runs[(record.topic, record.partition)].append(record)
        fetches.append([InputRun(topic, p, records) for (topic, p), records in runs.items()])
    return fetches


def placed(encoded: list[Encoded], partitions: int) -> list[ConsumerRecord[bytes, bytes]]:
    """Each record as its partition's log holds it: in the partition the producer's partitioner
    puts it in, at the next offset there."""
    ends: dict[tuple[str, int], int] = defaultdict(int)
    records = []
    for record in encoded:
        tp = (record.topic, partition_of(record.key.decode(), partitions))
        timestamp = record.timestamp_ms or 0
        records.append(
            ConsumerRecord(*tp, ends[tp], timestamp, 0, record.key, record.value, None, 0, 0, ())
        )
        ends[tp] += 1
    return records
