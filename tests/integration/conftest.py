"""A real Tansu broker for the whole session, and real worker processes per test."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from app.broker import EmbeddedBroker
from app.client import Encoded, Publisher, encode_input
from app.codecs.avro import Schemas
from app.config import TopicNames
from app.stream.io import ensure_tact_topics
from app.waiting import wait_until
from app.worker_process import WorkerProcess

__all__ = ["wait_until"]  # the tests' way to wait, from app/waiting.py

SCHEMAS = Schemas.load()
PARTITIONS = 4
_names = itertools.count()

TEST_WORKER_ENV = {
    "TACT_PARTITIONS": str(PARTITIONS),
    "TACT_RELEASE_INTERVAL_S": "0.5",
    "TACT_LOG_LEVEL": "info",
}


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


class Harness:
    """Topics of one test (own prefix and consumer group) on the shared broker."""

    def __init__(self, broker: EmbeddedBroker, tmp_path: Path) -> None:
        n = next(_names)
        self.broker = broker
        self.tmp_path = tmp_path
        self.prefix = f"t{n}-{os.getpid()}."
        self.topics = TopicNames.with_prefix(self.prefix)
        self.env = {
            **TEST_WORKER_ENV,
            "TACT_BROKER": broker.url,
            "TACT_TOPIC_PREFIX": self.prefix,
            "TACT_APP_ID": f"tact-it-{n}-{os.getpid()}",
        }
        self.workers: list[WorkerProcess] = []
        self.published: Counter[str] = Counter()  # records per topic
        # Per input partition, the next offset after the last record the broker acknowledged:
        # exact, where the embedded broker's own end offsets are not (see DESIGN notes).
        self.ends: dict[tuple[str, int], int] = {}
        asyncio.run(ensure_tact_topics(broker.bootstrap, self.topics, PARTITIONS))

    def worker(self, name: str = "w1", **env: str) -> WorkerProcess:
        worker = WorkerProcess(
            {**self.env, **env}, self.tmp_path / f"data-{name}", self.tmp_path / f"{name}.log"
        )
        self.workers.append(worker)
        return worker.start()

    def encode(self, records: Iterable[dict[str, Any]]) -> list[Encoded]:
        return [encode_input(r, self.topics, SCHEMAS) for r in records]

    def publish(self, records: Iterable[dict[str, Any]]) -> int:
        return self.publish_encoded(self.encode(records))

    def publish_encoded(self, encoded: list[Encoded]) -> int:
        async def go() -> list[Any]:
            # Upstream may compress its batches: the worker reads them as any consumer does.
            async with Publisher(self.broker.bootstrap, compression_type="lz4") as publisher:
                return await publisher.publish_acked(encoded)

        self.note_acked(asyncio.run(go()))
        self.published.update(e.topic for e in encoded)
        return len(encoded)

    def note_acked(self, acked: Iterable[Any]) -> None:
        for meta in acked:
            tp = (meta.topic, meta.partition)
            self.ends[tp] = max(self.ends.get(tp, 0), meta.offset + 1)

    def publish_raw(self, items: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
        items = list(items)

        async def go() -> list[Any]:
            async with Publisher(self.broker.bootstrap) as publisher:
                futures = [await publisher.producer.send(t, v, key=k) for t, k, v in items]
                return list(await asyncio.gather(*futures))

        self.note_acked(asyncio.run(go()))
        self.published.update(topic for topic, _, _ in items)

    def committed_offsets(self) -> dict[tuple[str, int], int]:
        """Per input partition, the offset the workers' group has committed (0: none)."""

        async def go() -> dict[tuple[str, int], int]:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.broker.bootstrap)
            await admin.start()
            try:
                tps = [TopicPartition(t, p) for t in self.topics.inputs for p in range(PARTITIONS)]
                offsets = await admin.list_consumer_group_offsets(
                    self.env["TACT_APP_ID"], partitions=tps
                )
            finally:
                await admin.close()
            return {(tp.topic, tp.partition): max(meta.offset, 0) for tp, meta in offsets.items()}

        return asyncio.run(go())

    def committed(self) -> Counter[str]:
        """Input records per topic the workers have made durable (their group's commits)."""
        counts: Counter[str] = Counter()
        for (topic, _), offset in self.committed_offsets().items():
            counts[topic] += offset
        return counts

    def wait_until_all_committed(self, timeout: float = 300) -> None:
        """Until every published input record is durable: only then is the table final."""
        wanted = {t: self.published[t] for t in self.topics.inputs}
        seen: dict[str, int] = {}

        def all_committed() -> bool:
            committed = self.committed()
            seen.update({t: committed[t] for t in wanted})
            return seen == wanted

        try:
            wait_until(all_committed, timeout, f"the workers to commit {wanted}", every=1.0)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; committed: {seen}\n{self.progress()}") from None

    def progress(self) -> str:
        """For a failure's message: per input partition what is committed of what was published,
        and each worker's state and the end of its log."""
        committed = self.committed_offsets()
        lines = [
            f"{topic}[{partition}]: committed {committed.get((topic, partition), 0)} of {end}"
            for (topic, partition), end in sorted(self.ends.items())
        ]
        for worker in self.workers:
            state = f"alive, pid {worker.pid}" if worker.alive else "not running"
            lines += [f"--- {worker.log_path.name} ({state}), last lines:", worker.log_tail(40)]
        return "\n".join(lines)

    def stop(self) -> None:
        """At the end of a test: nothing is checked after it, and its group is its own."""
        for worker in self.workers:
            if worker.alive:
                worker.kill()


@pytest.fixture
def harness(broker, tmp_path) -> Iterator[Harness]:
    h = Harness(broker, tmp_path)
    yield h
    h.stop()


class TopicReader:
    """Reads output topics from the beginning, keeping what it has read between calls."""

    def __init__(self, bootstrap: str, topics: Iterable[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = list(topics)
        self.records: dict[str, list[Any]] = {t: [] for t in self.topics}
        self._positions: dict[TopicPartition, int] = {}

    def poll(self, seconds: float = 0.5) -> None:
        asyncio.run(self._poll(seconds))

    async def _poll(self, seconds: float) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
        )
        await consumer.start()
        try:
            tps = [TopicPartition(t, p) for t in self.topics for p in range(PARTITIONS)]
            consumer.assign(tps)
            for tp in tps:
                consumer.seek(tp, self._positions.get(tp, 0))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for tp, batch in (
                    await consumer.getmany(timeout_ms=100, max_records=20000)
                ).items():
                    self.records[tp.topic].extend(batch)
                    self._positions[tp] = batch[-1].offset + 1
        finally:
            await consumer.stop()

    def poll_until_quiet(self, quiet: float = 2.0, limit: float = 120.0) -> None:
        """Read until a whole `quiet` interval brings nothing new (the topics are not growing)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before = sum(len(records) for records in self.records.values())
            self.poll(quiet)
            if sum(len(records) for records in self.records.values()) == before:
                return
        raise TimeoutError(f"{self.topics} kept growing for {limit} s")

    def values(self, topic: str, schema: str) -> list[dict[str, Any]]:
        codec = SCHEMAS[schema]
        return [codec.decode(r.value) for r in self.records[topic]]
