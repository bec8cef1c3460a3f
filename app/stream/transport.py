"""Faust plumbing that lets Tact process records a fetch at a time, and recover tables exactly.

Faust hands each Kafka record to an agent as its own event; on two cores that bookkeeping caps a
worker near 5,000 records/s before any work is done. `BatchingConsumer` keeps Faust's consumer,
group membership, flow control and rebalancing, but delivers all that one fetch brought for the
input topics as ONE event: a Fetch of runs (consecutive records of one partition). Tact's agent
decides the whole fetch, makes it durable in one go and commits its offsets itself (the input
topics are declared acks=False).

`FencedRecovery` works around a broker that reports end offsets wrongly (the embedded Tansu
broker reports the base offset of the last record batch + 1): before Faust trusts the end offsets
of changelog partitions, it appends one single-record "fence" to each, so the reported end is
exact and recovery reads every change. Real Kafka does not need it; it is enabled only with
broker_kind = "tansu".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from faust.serializers import codecs
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage

BATCH_CODEC = "tact-batch"


@dataclass(frozen=True, slots=True)
class InputRun:
    """Consecutive records of one input partition, as fetched."""

    topic: str
    partition: int
    records: list[Any]  # aiokafka ConsumerRecords: .offset, .key, .value, .timestamp


@dataclass(frozen=True, slots=True)
class Fetch:
    """Everything one fetch brought for the input topics: the value of one Faust event."""

    runs: list[InputRun]


class _PassThrough(codecs.Codec):
    """The event value is already a Fetch: no (de)serialization."""

    def _dumps(self, obj: Any) -> Any:
        return obj

    def _loads(self, s: Any) -> Any:
        return s


codecs.register(BATCH_CODEC, _PassThrough())


class BatchingConsumer(faust_aiokafka.Consumer):
    """Yields one message per fetch, holding every run of records of the `batch_topics`.

    `batch_topics` are in dependency order: profiles, events, candidates. A run is handed over
    only once every earlier topic's partition of the same number has been read to its end, so a
    candidate never overtakes the profile or the unsubscribe published before it (Kafka orders
    a partition, not a set of topics; after downtime or during a replay, the backlogs of the
    three topics are fetched at different speeds). A run that must wait is fetched again later.
    """

    batch_topics: tuple[str, ...] = ()
    fetch_wait_ms: int  # set by batching_transport (see Settings.fetch_wait_ms)

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        records, active = await self._wait_next_records(timeout)
        generation = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        if not self.flow_active:
            # As Faust does: drop the fetch and re-read from the committed offsets. A rebalance
            # can take partitions away meanwhile; the next assignment seeks again anyway.
            try:
                await self.perform_seek()
            except Exception as exc:
                self.log.warning("could not seek back while the flow is stopped: %r", exc)
            return
        runs = []
        for tp, run in sorted(records.items(), key=self._rank):
            if not run or not self._is_active(tp, active):
                continue
            if tp.topic not in self.batch_topics:
                for record in run:
                    yield tp, self._to_message(tp, record)
            elif await self._behind_earlier_topics(tp):
                await self.seek(tp, run[0].offset)
            else:
                runs.append(InputRun(tp.topic, tp.partition, run))
        if runs and generation == self.app.consumer_generation_id:
            first = TP(runs[0].topic, runs[0].partition)
            # Faust drops a message whose offset is below the last one read from its partition
            # (it assumes one message per record). A Fetch carries many partitions and may
            # repeat records after a seek back; Tact orders and deduplicates them itself.
            self._read_offset[first] = None
            yield first, _fetch_message(first, Fetch(runs), generation)

    async def _behind_earlier_topics(self, tp: TP) -> bool:
        for topic in self.batch_topics[: self.batch_topics.index(tp.topic)]:
            earlier = TP(topic, tp.partition)
            highwater = self.highwater(earlier)
            if highwater is None or (await self._position(earlier) or 0) < highwater:
                return True
        return False

    async def _position(self, tp: TP) -> int | None:
        """The consumer's position, read in place when it is known: asking the consumer thread
        costs a round trip between threads, several per fetch."""
        consumer = getattr(self._thread, "_consumer", None)
        subscription = consumer._subscription if consumer is not None else None
        if subscription is not None and subscription.is_assigned(tp):
            state = subscription.subscription.assignment.state_value(tp)
            if state.has_valid_position:
                return int(state.position)
        return await self.position(tp)

    def _rank(self, item: tuple[TP, Any]) -> tuple[int, int]:
        tp = item[0]
        return (
            self.batch_topics.index(tp.topic) if tp.topic in self.batch_topics else -1,
            tp.partition,
        )

    def _is_active(self, tp: TP, active: Collection[TP] | None) -> bool:
        return active is None or tp in active or tp in self._buffered_partitions

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust re-reads from the committed offsets after a rebalance, dropping what it had
        fetched. A partition with nothing committed yet must then go back to its beginning;
        left where it was, the dropped records would never be read."""
        committed = await super().seek_to_committed()
        never_committed = {tp: 0 for tp, offset in committed.items() if not offset}
        if never_committed:
            await self.seek_wait(never_committed)
        return committed

    async def commit_processed(self, offsets: dict[TP, int]) -> bool:
        """Commit input offsets Tact has fully processed (next offset to read)."""
        return await self._commit_offsets(offsets)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust fixes the fetch wait at 1,500 ms; Tact sets its own (see Settings.fetch_wait_ms)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = cast(BatchingConsumer, self.consumer).fetch_wait_ms
        return consumer


def _fetch_message(tp: TP, fetch: Fetch, generation: int) -> ConsumerMessage:
    last = fetch.runs[0].records[-1]
    return ConsumerMessage(
        tp.topic,
        tp.partition,
        last.offset,
        last.timestamp / 1000.0,
        last.timestamp_type,
        None,
        None,
        fetch,  # type: ignore[arg-type]  # the value is the Fetch itself, not bytes
        None,
        0,
        0,
        tp,
        generation_id=generation,
    )


def batching_transport(
    batch_topics: Iterable[str], fetch_wait_ms: int
) -> type[faust_aiokafka.Transport]:
    consumer = type(
        "TactConsumer",
        (BatchingConsumer,),
        {"batch_topics": tuple(batch_topics), "fetch_wait_ms": fetch_wait_ms},
    )
    return type("TactTransport", (faust_aiokafka.Transport,), {"Consumer": consumer})


Fence = Callable[[set[TP]], Awaitable[None]]


def fenced_table_manager(fence: Fence) -> type[TableManager]:
    """A TableManager whose recovery fences changelog partitions before reading end offsets."""

    class FencedRecovery(Recovery):
        async def _build_highwaters(
            self, consumer: Any, tps: set[TP], destination: Any, title: str
        ) -> None:
            if tps:
                await fence(tps)
            await super()._build_highwaters(consumer, tps, destination, title)

    class FencedTableManager(TableManager):
        @property
        def recovery(self) -> Recovery:
            if self._recovery is None:
                self._recovery = FencedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
            return self._recovery

    return FencedTableManager
