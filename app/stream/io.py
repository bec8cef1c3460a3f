"""Tact's own Kafka I/O: batched produce with acks, and reading a partition to its true end.

Outputs and changelog records are appended to aiokafka record batches (a couple of microseconds
per record, against tens for a Faust or aiokafka `send`) and awaited together. Reading "to the end"
trusts the high watermark returned with fetched data, not the ListOffsets answer, because the
embedded broker answers ListOffsets wrongly after multi-record batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import OffsetOutOfRangeError, TopicAlreadyExistsError
from aiokafka.structs import TopicPartition

from app.config import TopicNames

log = logging.getLogger(__name__)

FENCE_KEY = b"f/fence"


class OutRecord(NamedTuple):
    """A record to publish: a tuple, as built for every decision and message (a frozen dataclass
    costs 0.8 µs to build, this 0.3)."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class TailRecord:
    offset: int
    key: bytes | None
    value: bytes | None


Offsets = dict[tuple[str, int], int]  # (topic, partition) -> next offset


class RecordIO(Protocol):
    async def send(self, records: list[OutRecord]) -> Offsets: ...

    async def read_tail(
        self, starts: Offsets
    ) -> tuple[dict[tuple[str, int], list[TailRecord]], Offsets]: ...

    async def fence(self, tps: Iterable[tuple[str, int]]) -> None: ...

    async def log_ends(self, positions: Offsets) -> Offsets:
        """Where each of these partitions' logs ends now, read at the given positions."""
        ...


class KafkaIO:
    def __init__(
        self,
        bootstrap_servers: str,
        idempotent: bool,
        fetch_wait_ms: int,
        security: Mapping[str, Any] | None = None,
        compression_type: str | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.security = security  # TLS and SASL options (kafka_security.py)
        self.idempotent = idempotent
        self.fetch_wait_ms = fetch_wait_ms
        self.compression_type = compression_type  # of every batch written (aiokafka's name)
        self._producer: AIOKafkaProducer | None = None

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaIO.start() has not run")
        return self._producer

    async def start(self, topics: Iterable[str]) -> None:
        # aiokafka sends one batch per partition at a time, so records stay in order.
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            linger_ms=0,  # Tact hands over whole batches itself; waiting adds only latency
            max_batch_size=1024 * 1024,
            compression_type=self.compression_type,
            acks="all",
            # The broker drops a batch it already has when a retry repeats it. (The embedded
            # broker cannot: a retry after a lost acknowledgement could repeat a record there.)
            enable_idempotence=self.idempotent,
            request_timeout_ms=30000,
            **(self.security or {}),
        )
        await self.producer.start()
        for topic in topics:  # learn partition leaders before the first batch needs them
            await self.producer.partitions_for(topic)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, records: list[OutRecord]) -> Offsets:
        """Append records in order, one batch per partition, and wait until all are acked."""
        by_tp: dict[tuple[str, int], list[OutRecord]] = defaultdict(list)
        for record in records:
            by_tp[(record.topic, record.partition)].append(record)
        sends = [self._send_partition(tp, rs) for tp, rs in by_tp.items()]
        return dict(zip(by_tp, await asyncio.gather(*sends), strict=True))

    async def _send_partition(self, tp: tuple[str, int], records: list[OutRecord]) -> int:
        topic, partition = tp
        futures = []
        batch, count = self.producer.create_batch(), 0
        for record in records:
            if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                futures.append(
                    (await self.producer.send_batch(batch, topic, partition=partition), count)
                )
                batch, count = self.producer.create_batch(), 0
                if batch.append(key=record.key, value=record.value, timestamp=None) is None:
                    raise ValueError(f"a record for {topic} is larger than a whole batch")
            count += 1
        futures.append((await self.producer.send_batch(batch, topic, partition=partition), count))
        results = await asyncio.gather(*(future for future, _ in futures))
        return int(results[-1].offset) + futures[-1][1]

    async def fence(self, tps: Iterable[tuple[str, int]]) -> None:
        """One single-record batch per partition: afterwards the broker's end offset is exact."""
        await self.send([OutRecord(topic, partition, FENCE_KEY, None) for topic, partition in tps])

    async def log_ends(self, positions: Offsets) -> Offsets:
        if not positions:
            return {}
        async with self._reading(positions, reset="none") as (consumer, tps):
            return await _highwaters(consumer, tps)

    async def read_tail(
        self, starts: Offsets
    ) -> tuple[dict[tuple[str, int], list[TailRecord]], Offsets]:
        """Every record from each start offset (-1: from the end) to the partition's current
        end, and that end."""
        tails: dict[tuple[str, int], list[TailRecord]] = {tp: [] for tp in starts}
        ends = dict(starts)
        if not starts:
            return tails, ends
        async with self._reading(starts, reset="earliest") as (consumer, tps):
            await _drain(consumer, set(tps), tails, ends)
        return tails, ends

    @contextlib.asynccontextmanager
    async def _reading(
        self, starts: Offsets, reset: str
    ) -> AsyncIterator[tuple[AIOKafkaConsumer, dict[TopicPartition, int]]]:
        """A consumer of its own, at these offsets (-1: the end), outside any group."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset=reset,
            fetch_max_wait_ms=self.fetch_wait_ms,
            **(self.security or {}),
        )
        await consumer.start()
        try:
            tps = {TopicPartition(t, p): offset for (t, p), offset in starts.items()}
            consumer.assign(list(tps))
            for tp, offset in tps.items():
                if offset >= 0:
                    consumer.seek(tp, offset)
            # One request for every end: one each made a new worker's 88 partitions wait 1.3 s.
            at_end = [tp for tp, offset in tps.items() if offset < 0]
            if at_end:
                await consumer.seek_to_end(*at_end)
            yield consumer, tps
        finally:
            await consumer.stop()


async def _highwaters(consumer: AIOKafkaConsumer, tps: dict[TopicPartition, int]) -> Offsets:
    """The log end of each partition, from the high watermark a fetch at its position returns
    (exact on the embedded broker, where ListOffsets is not); a position beyond the end of a
    Kafka log is refused by the broker, and ListOffsets says where it ends."""
    ends: Offsets = {}
    waiting = set(tps)
    for _ in range(100):
        try:
            await consumer.getmany(*waiting, timeout_ms=100, max_records=1)
        except OffsetOutOfRangeError as exc:
            beyond = set(exc.args[0]) if exc.args and isinstance(exc.args[0], dict) else waiting
            for tp, end in (await consumer.end_offsets(list(beyond))).items():
                ends[(tp.topic, tp.partition)] = end
            waiting -= beyond
        for tp in [tp for tp in waiting if consumer.highwater(tp) is not None]:
            ends[(tp.topic, tp.partition)] = int(consumer.highwater(tp))
            waiting.discard(tp)
        if not waiting:
            return ends
    raise TimeoutError(f"no end offset known for {sorted(map(str, waiting))} after 10 s")


async def _drain(
    consumer: AIOKafkaConsumer,
    waiting: set[TopicPartition],
    tails: dict[tuple[str, int], list[TailRecord]],
    ends: Offsets,
) -> None:
    for _ in range(600):  # one minute at most
        fetched = await consumer.getmany(*waiting, timeout_ms=100, max_records=10000)
        for tp, records in fetched.items():
            tails[(tp.topic, tp.partition)].extend(
                TailRecord(r.offset, r.key, r.value) for r in records
            )
        for tp in list(waiting):
            highwater = consumer.highwater(tp)
            position = await consumer.position(tp)
            if highwater is not None and position >= highwater:
                ends[(tp.topic, tp.partition)] = highwater  # below a start: the log started over
                waiting.discard(tp)
        if not waiting:
            return
    raise TimeoutError(f"could not read to the end of {sorted(map(str, waiting))} within a minute")


@dataclass
class MemoryIO:
    """In-process stand-in for Kafka, for component tests of the agent."""

    logs: dict[tuple[str, int], list[TailRecord]] = field(default_factory=lambda: defaultdict(list))

    async def send(self, records: list[OutRecord]) -> Offsets:
        for record in records:
            log_ = self.logs[(record.topic, record.partition)]
            log_.append(TailRecord(len(log_), record.key, record.value))
        return {(r.topic, r.partition): len(self.logs[(r.topic, r.partition)]) for r in records}

    async def read_tail(
        self, starts: Offsets
    ) -> tuple[dict[tuple[str, int], list[TailRecord]], Offsets]:
        starts = {tp: len(self.logs[tp]) if offset < 0 else offset for tp, offset in starts.items()}
        tails = {tp: list(self.logs[tp][offset:]) for tp, offset in starts.items()}
        return tails, {tp: len(self.logs[tp]) for tp in starts}

    async def fence(self, tps: Iterable[tuple[str, int]]) -> None:
        await self.send([OutRecord(t, p, FENCE_KEY, None) for t, p in tps])

    async def log_ends(self, positions: Offsets) -> Offsets:
        return {tp: len(self.logs[tp]) for tp in positions}

    def values(self, topic: str) -> list[Any]:
        return [
            r.value for (t, _), records in sorted(self.logs.items()) if t == topic for r in records
        ]


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    partitions: int,
    replication: int = 1,
    compacted: Iterable[str] = (),
    security: Mapping[str, Any] | None = None,
) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    compacted = set(compacted)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                partitions,
                replication,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name in names
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


async def ensure_tact_topics(
    bootstrap_servers: str,
    topics: TopicNames,
    partitions: int,
    replication: int = 1,
    extra: Iterable[str] = (),
    security: Mapping[str, Any] | None = None,
) -> None:
    """Every topic Tact reads or writes (profiles compacted), plus `extra` ones."""
    await ensure_topics(
        bootstrap_servers,
        [*topics.inputs, *topics.outputs, *extra],
        partitions,
        replication,
        compacted=[topics.profiles],
        security=security,
    )
