"""The plain loop Tact is measured against: aiokafka consume -> produce, nothing decided.

`python -m app.bench.pipe BOOTSTRAP SOURCE TARGET` runs it for the latency load, in a process
of its own as the worker is.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.client import Encoded
from app.config import Settings

PARTITIONS = 8


async def preload(bootstrap: str, encoded: list[Encoded]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(e.topic, e.value, key=e.key, timestamp_ms=e.timestamp_ms)
            for e in encoded
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def pipe_rate(bootstrap: str, sources: list[str], target: str, total: int) -> float:
    """The plain loop: consume, produce each record onward, commit; records/s."""
    consumer = AIOKafkaConsumer(
        *sources,
        bootstrap_servers=bootstrap,
        group_id="bench-pipe",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    await consumer.start()
    await producer.start()
    try:
        moved, started = 0, None
        while moved < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            started = started or (time.perf_counter() if batch else None)
            moved += await forward(producer, target, batch)
            await consumer.commit()
        return moved / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await producer.stop()
        await consumer.stop()


async def forward(
    producer: AIOKafkaProducer, target: str, batch: dict[TopicPartition, list[Any]]
) -> int:
    """The plain loop's step: produce each fetched record onward and wait for the acks."""
    moved = 0
    for records in batch.values():
        for record in records:
            await producer.send(target, record.value, key=record.key)
            moved += 1
    await producer.flush()
    return moved


async def forward_forever(bootstrap: str, source: str, target: str) -> None:
    """The plain loop for the latency run: from the end of `source`, with the worker's fetch
    wait and no linger, as the worker runs; says "ready" once it is at the end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=Settings(broker_kind="tansu").fetch_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    consumer.assign([TopicPartition(source, p) for p in range(PARTITIONS)])
    await consumer.seek_to_end()
    print("ready", flush=True)
    while True:
        await forward(producer, target, await consumer.getmany(timeout_ms=1000, max_records=5000))


if __name__ == "__main__":  # BOOTSTRAP SOURCE TARGET
    asyncio.run(forward_forever(*sys.argv[1:4]))
