"""Making runs durable, in Tact's one order:
  1. publish the outputs (outbound messages, decisions, journey transitions, signals, dead
     letters) and
     wait for every ack;
  2. write the changed states, the release index and the checkpoint (output offsets and input
     positions): the changelog, then RocksDB;
  3. (the agent) commit the input offsets, in the background.
A crash anywhere replays the run (see recovery.py); an output that is not acknowledged raises,
so nothing after it is written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgpack

from app.policy.bounds import CHANGELOG_RECORD_LIMIT
from app.stream.cache import StateCache
from app.stream.holding import Holding
from app.stream.io import OutRecord, RecordIO
from app.stream.kafka_records import OutputEncoder
from app.stream.observe import Observer
from app.stream.partition import PartitionRun
from app.stream.recovery import Recovered
from app.stream.store import CHECKPOINT_KEY, PartitionStore, state_key

log = logging.getLogger(__name__)


@dataclass
class Owned:
    """What this worker knows of a partition it owns, as of its last durable write."""

    recovered: Recovered
    outputs: dict[str, int]  # next offset of each output topic
    inputs: dict[str, int]  # next input offset of each input topic
    holding: Holding = field(default_factory=Holding)  # the gauges of what it holds
    watermark: int = 0  # the latest time of an input decided since this worker took it
    # No release index key of this partition is due before this (release.py): the timer's range
    # read starts here instead of walking the deleted keys of everything released before.
    due_floor: int = 0


class Writer:
    def __init__(
        self,
        io: RecordIO,
        store: PartitionStore,
        cache: StateCache,
        encoder: OutputEncoder,
        observer: Observer,
        failpoint: str = "",
        max_state_bytes: int = CHANGELOG_RECORD_LIMIT,
    ) -> None:
        self.io = io
        self.store = store
        self.cache = cache
        self.encoder = encoder
        self.observer = observer
        self.failpoint = failpoint
        self.max_state_bytes = max_state_bytes

    async def write(self, runs: list[PartitionRun], owned: Mapping[int, Owned]) -> None:
        started = time.perf_counter()
        states = {run.partition: self._states_in_bounds(run) for run in runs}
        records = [record for run in runs for record in self._output_records(run)]
        if records:
            for (topic, partition), next_offset in (await self.io.send(records)).items():
                owned[partition].outputs[topic] = next_offset
            self.reached("after_outputs")
        for run in runs:
            run.settle_recovery()
            states[run.partition][CHECKPOINT_KEY] = self._checkpoint(run, owned[run.partition])
        try:
            await self.store.write(states, self.reached)
        except BaseException:
            self.cache.drop_partitions(states)  # RocksDB may hold part of these: read it again
            raise
        for run in runs:
            self._took(run, owned[run.partition])
        self.observer.on_durable(runs, time.perf_counter() - started)

    def _states_in_bounds(self, run: PartitionRun) -> dict[bytes, bytes | None]:
        """The run's state changes; a customer whose state would not fit in one changelog
        record is rolled back (its records become dead letters) instead of failing the run.
        The policy's limits make this impossible (bounds.py); this keeps a mistake there from
        stopping a partition."""
        changes = run.transaction.changes()
        for customer_id in list(run.transaction.changed):
            encoded = changes.get(state_key(customer_id))
            if encoded is not None and len(encoded) > self.max_state_bytes:
                log.error(
                    "a customer's state would be %d bytes; its records are set aside", len(encoded)
                )
                run.roll_back(
                    customer_id,
                    f"applying this record would make the customer's state {len(encoded):,} "
                    f"bytes, over the {self.max_state_bytes:,} one changelog record can hold",
                )
                changes = run.transaction.changes()
        return changes

    def _output_records(self, run: PartitionRun) -> list[OutRecord]:
        records, encoder, partition = [], self.encoder, run.partition
        for work in run.work.values():
            for applied in work.results:
                for decision in applied.decisions:
                    records.append(encoder.decision(partition, decision))
                for message in applied.outbound:
                    records.append(encoder.outbound(partition, message))
                for transition in applied.transitions:
                    records.append(encoder.transition(partition, transition))
                for signal in applied.signals:
                    records.append(encoder.signal(partition, signal))
        for letter in run.dead_letters:
            records.append(
                self.encoder.dead_letter(letter.topic, run.partition, letter.record, letter.error)
            )
        return records

    @staticmethod
    def _checkpoint(run: PartitionRun, owned: Owned) -> bytes:
        checkpoint = {**run.recovered.checkpoint(owned.outputs), **run.inputs}
        packed: bytes = msgpack.packb(checkpoint)
        return packed

    def _took(self, run: PartitionRun, owned: Owned) -> None:
        run.transaction.remember_written()
        earliest = run.transaction.earliest_due  # a durable write may add a key below the floor
        if earliest is not None:
            owned.due_floor = min(owned.due_floor, earliest)
        owned.inputs = run.inputs
        owned.watermark = max(owned.watermark, run.watermark)
        run.transaction.count_change(owned.holding)
        self.observer.on_holding(run.partition, owned.holding)

    def reached(self, point: str) -> None:
        """A named point between the durable steps: crash tests stop the worker there."""
        if self.failpoint == point:
            log.warning("failpoint %s: exiting as if killed", point)
            os._exit(137)
