"""Faust plumbing that lets Tact process records a fetch at a time, and recover tables exactly.

Faust hands each Kafka record to an agent as its own event; on two cores that bookkeeping caps a
worker near 5,000 records/s before any work is done. `BatchingConsumer` keeps Faust's consumer,
group membership, flow control and rebalancing, but delivers every fetched run of records of one
input partition as ONE event whose value is an InputRun of the raw records. Tact's agent then decides
the whole run at once and commits its offsets itself (the input topics are declared acks=False).

`FencedRecovery` works around a broker that reports end offsets wrongly (the embedded Tansu
broker reports the base offset of the last record batch + 1): before Faust trusts the end offsets
of changelog partitions, it appends one single-record "fence" to each, so the reported end is
exact and recovery reads every change. Real Kafka does not need it; it is enabled only with
broker_kind = "tansu".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from faust.serializers import codecs
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ConsumerMessage

BATCH_CODEC = "tact-batch"


@dataclass(frozen=True, slots=True)
class InputRun:
    """Consecutive records of one input partition, as fetched: the value of one Faust event."""

    topic: str
    partition: int
    records: list[Any]  # aiokafka ConsumerRecords: .offset, .key, .value, .timestamp

    @property
    def next_offset(self) -> int:
        return int(self.records[-1].offset) + 1


class _PassThrough(codecs.Codec):
    """The event value is already an InputRun: no (de)serialization."""

    def _dumps(self, obj: Any) -> Any:
        return obj

    def _loads(self, s: Any) -> Any:
        return s


codecs.register(BATCH_CODEC, _PassThrough())


class BatchingConsumer(faust_aiokafka.Consumer):
    """Yields one message per fetched run of records for the topics in `batch_topics`.

    Runs of one fetch are handed over in the order of `batch_topics` (profiles, events, then
    candidates), so a profile fetched together with its customer's first candidate comes first.
    """

    batch_topics: tuple[str, ...] = ()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        records, active = await self._wait_next_records(timeout)
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
        generation = self.app.consumer_generation_id
        for tp, run in sorted(records.items(), key=self._rank):
            if not run or not self._is_active(tp, active):
                continue
            if tp.topic in self.batch_topics:
                yield tp, _run_message(tp, run, generation)
            else:
                for record in run:
                    yield tp, self._to_message(tp, record)

    def _rank(self, item: tuple[TP, Any]) -> int:
        topic = item[0].topic
        return self.batch_topics.index(topic) if topic in self.batch_topics else -1

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


def _run_message(tp: TP, run: list[Any], generation: int) -> ConsumerMessage:
    last = run[-1]
    return ConsumerMessage(
        tp.topic, tp.partition, last.offset, last.timestamp / 1000.0, last.timestamp_type,
        None, None, InputRun(tp.topic, tp.partition, run), None, 0, 0, tp,
        generation_id=generation,
    )


def batching_transport(batch_topics: Iterable[str]) -> type[faust_aiokafka.Transport]:
    consumer = type("TactConsumer", (BatchingConsumer,), {"batch_topics": tuple(batch_topics)})
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
