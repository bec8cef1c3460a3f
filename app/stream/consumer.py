"""Faust's consumer, delivering what one fetch brought for the input topics as ONE event.

Faust hands each Kafka record to an agent as its own event; on two cores that bookkeeping caps a
worker near 5,000 records/s before any work is done. `BatchingConsumer` keeps Faust's consumer,
group membership, flow control and rebalancing, but yields one event per fetch: a Fetch of runs
(consecutive records of one partition). Tact's agent decides the whole fetch, makes it durable
in one go and commits its offsets itself (the input topics are declared acks=False). A run of a
changelog partition being restored is written to RocksDB in one go as well (restore.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from faust.serializers import codecs
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage
from mode.utils.queues import ThrowableQueue

from app.collector import untrack
from app.stream import faust_private
from app.stream.restore import restore_run

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


def register_batch_codec() -> None:
    """Faust looks value serializers up by name in a global registry."""
    if BATCH_CODEC not in codecs.codecs:
        codecs.register(BATCH_CODEC, _PassThrough())


def _uncounted(copy: str, records: int) -> None:
    """Changelog records restored, by copy, where nothing counts them."""


class UniformBackpressureQueue(ThrowableQueue[Any]):
    """A channel queue that holds input back only by being full.

    Faust pauses the partition a queued event came from once its queue is 80% full, and resumes
    it only as the queue drains (one partition per read below 40%, all of them when empty).
    Tact's event is a whole fetch labelled with one partition, and the other partitions keep
    the queue filled, so a paused partition could stay paused until the next rebalance. Here a
    full queue blocks the consumer instead, which stops fetching every partition alike.
    """

    def in_pressure_high_state(self, callback: Callable[..., Any]) -> bool:
        return False


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
    failpoint = ""  # see _lost_by_failpoint
    on_restored: Callable[[str, int], Any] = staticmethod(_uncounted)
    failpoint_spent = False

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
            if not run:
                continue
            if active is not None and tp not in active:
                if tp in self.assignment():  # paused while fetched: read it again once resumed
                    await self.seek(tp, run[0].offset)
                continue
            if tp.topic not in self.batch_topics:
                restored = restore_run(self.app.tables, tp, run)
                if restored is not None:
                    self.on_restored(*restored)
                    # Applied in bulk; Faust's recovery sees the last record, which it skips
                    # as applied, and checks whether recovery is done.
                    yield tp, self._to_message(tp, run[-1])
                    continue
                for record in run:
                    yield tp, self._to_message(tp, record)
            elif await self._behind_earlier_topics(tp):
                await self.seek(tp, run[0].offset)
            elif not self._lost_by_failpoint(run):
                untrack(run)  # it waits in queues and backlogs, and never holds a cycle
                runs.append(InputRun(tp.topic, tp.partition, run))
        if runs and generation == self.app.consumer_generation_id:
            first = TP(runs[0].topic, runs[0].partition)
            faust_private.forget_read_offset(self, first)
            yield first, _fetch_message(first, Fetch(runs), generation)

    async def _behind_earlier_topics(self, tp: TP) -> bool:
        for topic in self.batch_topics[: self.batch_topics.index(tp.topic)]:
            earlier = TP(topic, tp.partition)
            highwater = self.highwater(earlier)
            position = faust_private.position_in_place(self, earlier)
            if position is None:
                position = await self.position(earlier)
            if highwater is None or (position or 0) < highwater:
                return True
        return False

    def _lost_by_failpoint(self, run: list[Any]) -> bool:
        """Failpoint "drop_fetch:<text>": lose, once, a fetched run holding the text, as a fetch
        dropped on its way to the agent is lost (see undelivered.py)."""
        point = self.failpoint
        if self.failpoint_spent or not point.startswith("drop_fetch:"):
            return False
        if not any(point[11:].encode() in (r.value or b"") for r in run):
            return False
        self.failpoint_spent = True
        self.log.warning("failpoint %s: a fetched run is lost", point)
        return True

    def _rank(self, item: tuple[TP, Any]) -> tuple[int, int]:
        tp = item[0]
        return (
            self.batch_topics.index(tp.topic) if tp.topic in self.batch_topics else -1,
            tp.partition,
        )

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust re-reads from the committed offsets after a rebalance, dropping what it had
        fetched. A partition with nothing committed yet must then go back to its beginning;
        left where it was, the dropped records would never be read."""
        committed = await super().seek_to_committed()
        never_committed = {tp: 0 for tp, offset in committed.items() if not offset}
        if never_committed:
            await self.seek_wait(never_committed)
        return committed

    async def _seek(self, partition: TP, offset: int) -> None:
        """Seek in the consumer thread, as Faust's other consumer calls do. Faust runs aiokafka's
        seek in the calling thread, and that seek deletes the partition's fetched records from
        a dict the consumer thread may be looping over at that moment: KeyError, the fetcher
        crashed and the worker with it (robinhood/aiokafka#19). Tact seeks back after every
        restart that finds records its state has not read, so restarts hit it."""
        await faust_private.seek_in_consumer_thread(self, partition, offset)

    async def commit_processed(self, offsets: dict[TP, int]) -> bool:
        """Commit input offsets Tact has fully processed (next offset to read)."""
        return await faust_private.commit_offsets(self, offsets)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust fixes the fetch wait at 1,500 ms; Tact sets its own (see Settings.fetch_wait_ms)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        faust_private.set_fetch_wait(consumer, cast(BatchingConsumer, self.consumer).fetch_wait_ms)
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
    batch_topics: Iterable[str],
    fetch_wait_ms: int,
    failpoint: str = "",
    on_restored: Callable[[str, int], Any] = _uncounted,
) -> type[faust_aiokafka.Transport]:
    consumer = type(
        "TactConsumer",
        (BatchingConsumer,),
        {
            "batch_topics": tuple(batch_topics),
            "fetch_wait_ms": fetch_wait_ms,
            "failpoint": failpoint,
            "on_restored": staticmethod(on_restored),  # changelog records restored, per copy
        },
    )
    return type("TactTransport", (faust_aiokafka.Transport,), {"Consumer": consumer})
