"""The partitions this worker owns: what a fetch brought, and the release timer, made durable.

For every batch, per partition: the records past the partition's input position are decided
(partition.py), then the writer publishes the outputs and stores the state (writer.py), then the
agent commits the input offsets. A crash anywhere replays the batch: the input positions in the
checkpoint make a record read twice a no-op, a record never delivered (a gap) is read again,
and outputs that reached Kafka before the crash are found again and never published twice
(recovery.py). One lock: batches and releases never interleave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.clock import now_ms
from app.codecs.avro import Schemas
from app.collector import collector_off
from app.config import TopicNames
from app.policy.model import CustomerState
from app.policy.rules import Policy
from app.stream.cache import StateCache
from app.stream.consumer import InputRun
from app.stream.guard import Attempts
from app.stream.io import RecordIO
from app.stream.kafka_records import InputDecoder, RawRecord
from app.stream.log_reset import logs_behind
from app.stream.observe import Observer
from app.stream.partition import PartitionRun
from app.stream.recovery import read_checkpoint, recover_partitions
from app.stream.release import (
    RELEASE_CHUNK,
    count_held,
    due_customers,
    floor_after,
    release_until,
)
from app.stream.store import PartitionStore, Transaction
from app.stream.writer import Owned, Writer

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
RESEED_CHUNK = 10_000  # keys per changelog write when the state is written again


class NotReady(Exception):
    """The partition is not (or not yet) this worker's."""


class ProcessorClosed(Exception):
    """The worker is stopping: the batch was not processed and must not be committed."""


@dataclass
class Progress:
    """What process() made of the runs it was given."""

    done: dict[TopicPartition, int] = field(default_factory=dict)  # durable up to (next offset)
    rewind: dict[TopicPartition, int] = field(default_factory=dict)  # a gap: read again from here


@dataclass
class Parts:
    """What the processor works with; build_app() names the concrete ones."""

    topics: TopicNames
    policy: Policy
    schemas: Schemas
    store: PartitionStore
    io: RecordIO
    writer: Writer
    observer: Observer
    cache: StateCache
    attempts: Attempts
    decoder: InputDecoder
    clock: Callable[[], int] = now_ms
    release_grace_ms: int = 0  # see Settings.release_grace_ms
    reset_state: bool = False  # see log_reset.py
    failpoint: str = ""  # "poison:<text>": die like a crash applying a record containing text
    on_refused: Callable[[set[int]], Any] = lambda partitions: None  # stop fetching them
    on_reset: Callable[[set[int]], Awaitable[Any]] | None = None  # read them from the start
    # An input log's end as the last fetch saw it (None: not yet); without a consumer, read.
    log_end: Callable[[str, int], int | None] = lambda topic, partition: 0


class Processor:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.lock = asyncio.Lock()
        self.assigned: set[int] = set()
        self.owned: dict[int, Owned] = {}  # partitions made ready, as of their last write
        self.refused: set[int] = set()  # partitions whose input log is behind their state
        self.suspects: dict[int, tuple[str, int] | None] = {}
        self.closed = False

    @property
    def clock(self) -> Callable[[], int]:
        return self.parts.clock

    def input_lag(self) -> list[tuple[str, int, int, float]]:
        """(topic, partition, records behind the log end, seconds behind by record time) of
        every owned input partition whose end is known; read by /metrics at each scrape."""
        now, lag = self.clock(), []
        for partition, owned in list(self.owned.items()):
            for topic in self.parts.topics.inputs:
                end = self.parts.log_end(topic, partition)
                if end is None:
                    continue
                behind = max(end - owned.inputs.get(topic, 0), 0)
                late = (now - owned.watermark) / 1000 if behind and owned.watermark else 0.0
                lag.append((topic, partition, behind, max(late, 0.0)))
        return lag

    async def process(self, fetched: list[InputRun]) -> Progress:
        """Decide runs of input records (in order) and make all of it durable at once.

        Runs of partitions this worker does not own (fetched before a rebalance) are left alone.
        """
        async with self._exclusive():
            if self.closed:
                raise ProcessorClosed()
            return await self._decide_and_write(
                [run for run in fetched if run.partition in self.assigned]
            )

    async def _decide_and_write(self, fetched: list[InputRun]) -> Progress:
        """The batch, decided and made durable. What it built is freed when this returns, before
        the collector runs again (_exclusive): it would walk all of it."""
        await self._ready({run.partition for run in fetched})
        started, clock, progress = time.perf_counter(), self.clock(), Progress()
        runs = self._decide(fetched, clock, progress)
        self.parts.observer.on_decided(time.perf_counter() - started)
        await self.parts.writer.write(list(runs.values()), self.owned)
        for run in runs.values():
            progress.done.update({(t, run.partition): o for t, o in run.inputs.items()})
        return progress

    def _decide(
        self, fetched: list[InputRun], clock: int, progress: Progress
    ) -> dict[int, PartitionRun]:
        runs: dict[int, PartitionRun] = {}
        for batch in [run for run in fetched if run.partition in self.owned]:
            if batch.partition not in runs:
                runs[batch.partition] = self._new_run(batch.partition)
                self.suspects[batch.partition] = self.parts.attempts.begin(
                    batch.partition, self.owned[batch.partition].inputs
                )
            run = runs[batch.partition]
            for record in self._unread(run, batch, progress):
                self._apply(run, batch.topic, record, clock)
        for partition in runs:
            self.parts.attempts.applied(partition)
        return runs

    def _apply(self, run: PartitionRun, topic: str, record: RawRecord, clock: int) -> None:
        if self.suspects.get(run.partition) == (topic, record.offset):
            run.set_aside(topic, record)
            return
        self.parts.attempts.applying(run.partition, topic, record.offset)
        self._maybe_poisoned(record)
        run.apply(topic, record, clock)

    def _maybe_poisoned(self, record: RawRecord) -> None:
        point = self.parts.failpoint
        if point.startswith("poison:") and point[7:].encode() in (record.value or b""):
            log.warning("failpoint %s: exiting as if killed", point)
            os._exit(137)

    def _unread(self, run: PartitionRun, batch: InputRun, progress: Progress) -> list[Any]:
        """The records of `batch` past the partition's input position; none if some are missing."""
        tp = (batch.topic, batch.partition)
        expected = run.inputs.get(batch.topic)
        records = batch.records
        if expected is not None:
            records = [r for r in records if r.offset >= expected]
        if tp in progress.rewind or not records:
            return []
        if expected is not None and records[0].offset > expected:
            log.warning(
                "%s[%d]: offsets %d to %d were not delivered; reading them again",
                *tp,
                expected,
                records[0].offset - 1,
            )
            progress.rewind[tp] = expected
            return []
        run.inputs[batch.topic] = int(records[-1].offset) + 1
        return list(records)

    async def release_due(self) -> int:
        """Decide the held work due by now, RELEASE_CHUNK customers per partition and durable
        write at a time; between chunks the agent's next batch goes first. Returns how many
        customers were looked at."""
        released = 0
        while True:
            async with self._exclusive():
                if self.closed:
                    return released
                customers, more = await self._release_and_write()
            released += customers
            if not more:
                return released
            await asyncio.sleep(0)  # asyncio's lock is fair: a waiting batch takes it first

    async def _release_and_write(self) -> tuple[int, bool]:
        """One chunk of what is due, made durable (freed on return, as _decide_and_write):
        the customers looked at, and whether more may be due."""
        await self._ready(self.assigned)
        runs, more = self._release_chunk(self.clock() - self.parts.release_grace_ms)
        if runs:
            await self.parts.writer.write(runs, self.owned)
        return sum(len(run.transaction.changed) for run in runs), more

    def _release_chunk(self, clock: int) -> tuple[list[PartitionRun], bool]:
        runs, more = [], False
        for partition in sorted(self.owned):
            until = release_until(
                self.owned[partition], self.parts.topics, self.parts.log_end, partition, clock
            )
            owned = self.owned[partition]
            due = due_customers(self.parts.store, partition, until, RELEASE_CHUNK, owned.due_floor)
            owned.due_floor = floor_after(owned.due_floor, due, RELEASE_CHUNK, until)
            more |= len(due) == RELEASE_CHUNK
            if due:
                run = self._new_run(partition)
                for customer_id, due_at in due:
                    run.apply_due(customer_id, due_at, until)
                runs.append(run)
        return runs, more

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """One batch or release chunk at a time, with the cycle collector off until it is
        durable: what it builds holds no cycles and is freed by reference counting (see
        app/collector.py)."""
        async with self.lock:
            with collector_off():
                yield

    async def close(self) -> None:
        """Wait for the batch in flight, then take no more: the worker is stopping."""
        async with self.lock:
            self.closed = True

    def assign(self, partitions: Iterable[int]) -> None:
        """Partitions this worker now owns (their tables may still be recovering)."""
        self.assigned = set(partitions)
        self.parts.observer.on_assigned(len(self.assigned))

    async def revoke(self, partitions: Iterable[int]) -> None:
        """Partitions leave this worker: wait for the batch in flight, then drop what we knew."""
        async with self.lock:
            leaving = set(partitions)
            self.parts.cache.drop_partitions(leaving)
            for partition in leaving:
                self.assigned.discard(partition)
                self.refused.discard(partition)
                owned = self.owned.pop(partition, None)
                if owned is not None:
                    self.parts.observer.on_revoked(partition, owned.holding)

    def _new_run(self, partition: int) -> PartitionRun:
        owned = self.owned[partition]
        transaction = Transaction(partition, self.parts.store, self.parts.cache)
        return PartitionRun(
            partition,
            owned.inputs,
            owned.recovered,
            transaction,
            self.parts.decoder,
            self.parts.policy,
        )

    # -- making a partition ready ---------------------------------------------------------------

    async def _ready(self, partitions: Iterable[int]) -> None:
        """Recover these partitions (and any other assigned one not yet ready) before use."""
        waiting = (self.assigned | set(partitions)) - set(self.owned) - self.refused
        if not waiting:
            return
        p = self.parts
        p.cache.drop_partitions(waiting)
        started = time.perf_counter()
        found = await recover_partitions(waiting, p.topics, p.store, p.io, p.schemas)
        spent = time.perf_counter() - started
        log.info("partitions %s: outputs read back in %.2f s", sorted(waiting), spent)
        inputs = {partition: self._stored_inputs(partition) for partition in found}
        restarted = await self._logs_started_over(inputs)
        runs = []
        for partition, (recovered, positions) in sorted(found.items()):
            if partition in self.refused:
                continue
            holding = count_held(p.store, partition)
            self.owned[partition] = Owned(recovered, positions, inputs[partition], holding)
            runs.append(self._reflecting_stored_state(partition))
        await p.writer.write(runs, self.owned)  # also stores the first checkpoint of a partition
        for partition in restarted:
            await self._write_state_again(partition)
        if restarted and p.on_reset is not None:
            await p.on_reset(restarted)

    def _stored_inputs(self, partition: int) -> dict[str, int]:
        checkpoint = read_checkpoint(self.parts.store, partition)
        return {t: checkpoint[t] for t in self.parts.topics.inputs if t in checkpoint}

    async def _logs_started_over(self, inputs: dict[int, dict[str, int]]) -> set[int]:
        """Refuse, or with --reset-state read again from the start, each partition whose input
        log ends before the position its state has read it to (log_reset.py)."""
        behind = await logs_behind(self.parts.io, inputs)
        for gap in behind:
            log.error(gap.explain(self.parts.reset_state))
            self.parts.observer.on_log_behind_state(gap.topic, gap.partition, True)
        partitions = {gap.partition for gap in behind}
        if self.parts.reset_state:
            for partition in partitions:
                inputs[partition] = {}
            return partitions
        self.refused |= partitions
        if partitions:
            self.parts.on_refused(partitions)
        return set()

    def _reflecting_stored_state(self, partition: int) -> PartitionRun:
        """A run that reads the customers of what recovery found: what the stored state already
        holds needs no adopting, and the first checkpoint may pass it."""
        run = self._new_run(partition)
        for decision in list(run.recovered.logged.values()):
            run.transaction.get(decision.customer_id)
        return run

    async def _write_state_again(self, partition: int) -> None:
        """After the broker started over its changelog lacks what RocksDB holds: write it all
        again, so that a lost disk can still be rebuilt from the changelog."""
        store = self.parts.store
        keys = list(store.keys(partition, b"", b"\xff"))
        for start in range(0, len(keys), RESEED_CHUNK):
            chunk = {k: store.get(partition, k) for k in keys[start : start + RESEED_CHUNK]}
            await store.write({partition: chunk})
        log.warning("partition %d: %d keys written to the new changelog", partition, len(keys))
        for topic in self.parts.topics.inputs:
            self.parts.observer.on_log_behind_state(topic, partition, False)

    def ready_partitions(self) -> list[int]:
        return sorted(self.owned)

    def state_of(self, partition: int, customer_id: str) -> CustomerState | None:
        """A customer's state as this worker's last durable write left it (for the view)."""
        if partition not in self.owned:
            raise NotReady(partition)
        return Transaction(partition, self.parts.store, self.parts.cache).get(customer_id)
