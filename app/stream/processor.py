"""The partition writer: decode a run of records, run the core, make the results durable.

For every run of one partition, in this order:
  1. decide: decode each record (bad ones become dead letters), apply it to the customer's state;
     records below the partition's input position were decided before and are passed over;
  2. publish the outputs (outbound messages, decisions, dead letters) and wait for the acks;
  3. write the changed states, the release index and the checkpoint (output offsets and input
     positions): changelog, then RocksDB;
  4. (the agent) commit the input offsets.
A crash anywhere replays the run. The input positions in the checkpoint make any record read
twice (a replay, or a fetch repeated by the consumer) a no-op, and a record never delivered
(a gap) is read again rather than passed over. Outputs that reached Kafka although the state did
not are found again by reading the output topics from the checkpoint (see `recovery.py`) and
adopted, never published twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack

from app.codecs.avro import DEFAULT_MAX_RECORD_BYTES, AvroCodec, Schemas, WireError, check_size
from app.codecs.records import (
    RecordError,
    candidate_from_dict,
    decision_to_dict,
    event_from_dict,
    outbound_to_dict,
    profile_from_dict,
)
from app.codecs.state import decode_state, encode_state
from app.config import TopicNames
from app.metrics import Metrics
from app.policy.decide import adopt
from app.policy.engine import Applied, Input, ProfileDeleted, apply_record, release
from app.policy.model import Candidate, CustomerState, Decision, OutboundMessage, Outcome
from app.policy.reasons import reason_label
from app.policy.rules import Policy
from app.stream.cache import StateCache
from app.stream.io import OutRecord, RecordIO
from app.stream.recovery import Recovered, read_checkpoint, recover_partitions
from app.stream.store import (
    CHECKPOINT_KEY,
    DUE_PREFIX,
    PartitionStore,
    customer_of_due_key,
    due_key,
    state_key,
)
from app.stream.transport import InputRun

log = logging.getLogger(__name__)


class RawRecord(Protocol):
    """What Kafka hands over: aiokafka's ConsumerRecord has these."""

    offset: int
    key: bytes | None
    value: bytes | None


MAX_DEAD_LETTER_VALUE = 256 * 1024  # a dead letter must fit in a produce request


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


Decoders = dict[str, tuple[AvroCodec, Callable[[dict[str, Any]], Input]]]


def input_decoders(topics: TopicNames, schemas: Schemas) -> Decoders:
    """Per input topic: its Avro codec, and what turns the decoded dict into the core's value."""
    return {
        topics.profiles: (schemas["tact.CustomerProfile"], profile_from_dict),
        topics.events: (schemas["tact.CustomerEvent"], event_from_dict),
        topics.candidates: (schemas["tact.Candidate"], candidate_from_dict),
    }


class ProcessorClosed(Exception):
    """The worker is stopping: the run was not processed and must not be committed."""


TopicPartition = tuple[str, int]


@dataclass
class Progress:
    """What process() made of the runs it was given."""

    done: dict[TopicPartition, int] = field(default_factory=dict)  # durable up to (next offset)
    rewind: dict[TopicPartition, int] = field(default_factory=dict)  # a gap: read again from here


@dataclass
class Run:
    """The work of one partition between two durable points."""

    partition: int
    recovered: Recovered
    inputs: dict[str, int] = field(default_factory=dict)  # next input offset per input topic
    states: dict[str, CustomerState | None] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    returning: set[str] = field(default_factory=set)  # customers with a state before this run
    due_before: dict[str, int | None] = field(default_factory=dict)
    pending_before: dict[str, int] = field(default_factory=dict)
    outputs: list[OutRecord] = field(default_factory=list)
    candidates_created_at: list[int] = field(default_factory=list)
    decision_labels: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    outbound_channels: Counter[str] = field(default_factory=Counter)


class Processor:
    def __init__(
        self,
        topics: TopicNames,
        policy: Policy,
        schemas: Schemas,
        store: PartitionStore,
        io: RecordIO,
        metrics: Metrics,
        clock: Callable[[], int] = wall_clock_ms,
        failpoint: str = "",
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        cache: StateCache | None = None,
    ) -> None:
        self.topics = topics
        self.policy = policy
        self.store = store
        self.io = io
        self.metrics = metrics
        self.clock = clock
        self.failpoint = failpoint
        self.max_record_bytes = max_record_bytes
        self.cache = StateCache(0) if cache is None else cache  # an empty cache is falsy
        self.lock = asyncio.Lock()  # one writer: runs and releases never interleave
        self.assigned: set[int] = set()
        self.recovered: dict[int, Recovered] = {}  # partitions made ready, and what recovery found
        self.positions: dict[int, dict[str, int]] = {}  # next offset of each output topic
        self.inputs: dict[int, dict[str, int]] = {}  # next input offset, as last made durable
        self.backlog: dict[int, int] = {}
        self.closed = False
        self._decoders = input_decoders(topics, schemas)
        self._decision_codec = schemas["tact.Decision"]
        self._outbound_codec = schemas["tact.OutboundMessage"]
        self._dead_letter_codec = schemas["tact.DeadLetter"]
        self._schemas = schemas

    # -- the two entry points: what a fetch brought, and the release timer ---------------------

    async def process(self, runs: list[InputRun]) -> Progress:
        """Decide runs of input records (in order) and make all of it durable at once.

        Runs of partitions this worker does not own (fetched before a rebalance) are left alone.
        """
        async with self.lock:
            if self.closed:
                raise ProcessorClosed()
            runs = [run for run in runs if run.partition in self.assigned]
            await self._ready({run.partition for run in runs})
            started = time.perf_counter()
            clock = self.clock()
            progress = Progress()
            work: dict[int, Run] = {}
            decided: Counter[str] = Counter()
            for run in runs:
                if run.partition not in work:
                    work[run.partition] = self._new_run(run.partition)
                records = self._unread(work[run.partition], run, progress)
                for record in records:
                    self._apply_raw(work[run.partition], run.topic, record, clock)
                decided[run.topic] += len(records)
            self.metrics.decide_seconds.observe(time.perf_counter() - started)
            await self._flush(list(work.values()))
            for partition_run in work.values():
                self.inputs[partition_run.partition] = partition_run.inputs
                for topic, offset in partition_run.inputs.items():
                    progress.done[(topic, partition_run.partition)] = offset
            for topic, count in decided.items():
                self.metrics.records_in.labels(topic).inc(count)
            self.metrics.batch_records.observe(sum(decided.values()))
            return progress

    def _unread(self, work: Run, run: InputRun, progress: Progress) -> list[Any]:
        """The records of `run` past the partition's input position; none if some are missing."""
        tp = (run.topic, run.partition)
        expected = work.inputs.get(run.topic)
        records = run.records
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
        work.inputs[run.topic] = int(records[-1].offset) + 1
        return list(records)

    async def release_due(self) -> int:
        """Decide every held candidate that is due by now; returns how many customers."""
        async with self.lock:
            if self.closed:
                return 0
            await self._ready(self.assigned)
            clock = self.clock()
            runs = [
                self._release_partition(partition, clock) for partition in sorted(self.assigned)
            ]
            await self._flush([run for run in runs if run.changed])
            return sum(len(run.changed) for run in runs)

    async def close(self) -> None:
        """Wait for the run in flight, then take no more: the worker is stopping."""
        async with self.lock:
            self.closed = True

    def assign(self, partitions: Iterable[int]) -> None:
        """Partitions this worker now owns (their tables may still be recovering)."""
        self.assigned = set(partitions)

    async def forget(self, partitions: Iterable[int]) -> None:
        """Partitions leave this worker: wait for the run in flight, then drop what we knew."""
        async with self.lock:
            partitions = set(partitions)
            self.cache.forget(partitions)
            for partition in partitions:
                self.assigned.discard(partition)
                self.recovered.pop(partition, None)
                self.positions.pop(partition, None)
                self.inputs.pop(partition, None)
                if self.backlog.pop(partition, None) is not None:
                    self.metrics.deferred_backlog.remove(str(partition))

    # -- deciding -----------------------------------------------------------------------------

    def _apply_raw(self, run: Run, topic: str, record: RawRecord, clock: int) -> None:
        try:
            item = self._decode(topic, record)
        except (WireError, RecordError) as exc:
            self._dead_letter(run, topic, record, str(exc), "undecodable")
            return
        key = record.key.decode(errors="replace") if record.key is not None else None
        if key != item.customer_id:
            problem = (
                f"key {key!r} is not the customer_id {item.customer_id!r}: "
                "key every record by customer_id"
            )
            self._dead_letter(run, topic, record, problem, "wrong_key")
            return
        state = self._state(run, item.customer_id)
        if isinstance(item, Candidate) and state is not None:
            if item.message_id in state.decided:
                self.metrics.duplicates_ignored.inc()
                run.recovered.applied(item.message_id)
                return
            logged = run.recovered.logged(item.message_id)
            if logged is not None:
                self._adopt(run, item, state, logged)
                return
        applied = apply_record(state, item, clock, self.policy)
        if isinstance(item, ProfileDeleted):
            applied = self._without_logged(run, applied)
        if applied.problem:
            self._dead_letter(run, topic, record, applied.problem, "invalid")
            return
        if isinstance(item, Candidate):
            run.candidates_created_at.append(item.created_at)
        self._keep(run, item.customer_id, applied)

    def _without_logged(self, run: Run, applied: Applied) -> Applied:
        """A replayed deletion: drop the cancellations that reached the topic before a crash."""
        fresh = tuple(
            d for d in applied.decisions if not self._logged_as(run, d, Outcome.CANCELLED)
        )
        for decision in applied.decisions:
            run.recovered.applied(decision.message_id)
        return Applied(applied.state, fresh)

    @staticmethod
    def _logged_as(run: Run, decision: Decision, outcome: Outcome) -> bool:
        logged = run.recovered.logged(decision.message_id)
        return logged is not None and logged[0].outcome is outcome

    def _decode(self, topic: str, record: RawRecord) -> Input:
        codec, build = self._decoders[topic]
        check_size(record.value, self.max_record_bytes)
        if record.value is None and topic == self.topics.profiles and record.key:
            return ProfileDeleted(record.key.decode(errors="replace"))
        return build(codec.decode(record.value))

    def _adopt(
        self, run: Run, candidate: Candidate, state: CustomerState, logged: tuple[Decision, bool]
    ) -> None:
        decision, on_topic = logged
        step = adopt(state, candidate, decision, self.policy)
        decisions = () if on_topic else step.decisions
        outbound = tuple(m for m in step.outbound if m.message_id not in run.recovered.sent)
        self.metrics.recovered.labels("on_topic" if on_topic else "rebuilt").inc()
        self._keep(run, candidate.customer_id, Applied(step.state, decisions, outbound))
        run.recovered.applied(candidate.message_id)

    def _state(self, run: Run, customer_id: str) -> CustomerState | None:
        if customer_id not in run.states:
            state = self.cache.get(run.partition, customer_id)
            if state is None:
                raw = self.store.get(run.partition, state_key(customer_id))
                state = decode_state(raw) if raw is not None else None
            run.states[customer_id] = state
            if state is not None:
                run.returning.add(customer_id)
            run.due_before[customer_id] = state.next_due if state else None
            run.pending_before[customer_id] = len(state.pending) if state else 0
        return run.states[customer_id]

    def _keep(self, run: Run, customer_id: str, applied: Applied) -> None:
        run.states[customer_id] = applied.state
        run.changed.add(customer_id)
        for decision in applied.decisions:
            run.outputs.append(self._decision_record(run, decision))
        for message in applied.outbound:
            run.outputs.append(self._outbound_record(run, message))

    def _decision_record(self, run: Run, decision: Decision) -> OutRecord:
        reason = reason_label(decision.reasons[0]) if decision.reasons else ""
        labels = (decision.outcome.value, reason, decision.channel or "", decision.category.value)
        run.decision_labels[labels] += 1
        value = self._decision_codec.encode(decision_to_dict(decision))
        return OutRecord(self.topics.decisions, run.partition, decision.customer_id.encode(), value)

    def _outbound_record(self, run: Run, message: OutboundMessage) -> OutRecord:
        run.outbound_channels[message.channel] += 1
        value = self._outbound_codec.encode(outbound_to_dict(message))
        topic = self.topics.outbound[message.channel]
        return OutRecord(topic, run.partition, message.customer_id.encode(), value)

    def _dead_letter(self, run: Run, topic: str, record: RawRecord, error: str, kind: str) -> None:
        source = (topic, run.partition, record.offset)
        if source in run.recovered.dead_letters:
            run.recovered.applied(source)
            return  # published before a crash; not twice
        self.metrics.dead_letters.labels(topic, kind).inc()
        key = record.key[:MAX_DEAD_LETTER_VALUE] if record.key else record.key
        original = record.value
        if original is not None and len(original) > MAX_DEAD_LETTER_VALUE:
            error += (
                f" (the dead letter keeps the first {MAX_DEAD_LETTER_VALUE:,} of "
                f"{len(original):,} bytes; the rest is at the source offset)"
            )
            original = original[:MAX_DEAD_LETTER_VALUE]
        value = self._dead_letter_codec.encode(
            {
                "source_topic": topic,
                "source_partition": run.partition,
                "source_offset": record.offset,
                "key": key,
                "value": original,
                "error": error,
                "failed_at": self.clock(),
            }
        )
        run.outputs.append(OutRecord(self.topics.dead_letters, run.partition, key, value))

    # -- releasing held candidates --------------------------------------------------------------

    def _release_partition(self, partition: int, clock: int) -> Run:
        stop = due_key(clock + 1, "")
        customers = {customer_of_due_key(k) for k in self.store.keys(partition, DUE_PREFIX, stop)}
        run = self._new_run(partition)
        for customer_id in sorted(customers):
            state = self._state(run, customer_id)
            if state is not None:
                self._keep(run, customer_id, release(state, clock, self.policy))
        self.metrics.released.inc(sum(run.decision_labels.values()))
        return run

    # -- durability -----------------------------------------------------------------------------

    async def _flush(self, runs: list[Run]) -> None:
        """Outputs first, then state (changelog, then RocksDB): see the module docstring."""
        if not runs:
            return
        started = time.perf_counter()
        outputs = [record for run in runs for record in run.outputs]
        if outputs:
            offsets = await self.io.send(outputs)
            for (topic, partition), next_offset in offsets.items():
                self.positions[partition][topic] = next_offset
            self._maybe_fail("after_outputs")
        changes = {run.partition: self._state_changes(run) for run in runs}
        try:
            await self.store.write(changes, self._maybe_fail)
        except BaseException:
            self.cache.forget(changes)  # RocksDB may hold part of these changes: read it again
            raise
        self.metrics.flush_seconds.observe(time.perf_counter() - started)
        now = self.clock()
        for run in runs:
            self._cache_written(run)
            self._count_outputs(run)
            for created_at in run.candidates_created_at:
                self.metrics.decision_lag.observe(max(now - created_at, 0) / 1000)

    def _cache_written(self, run: Run) -> None:
        """Cache what a durable run wrote for customers who had a state before it. One seen for
        the first time (most often a new profile) may not come back soon, and caching it would
        push out one who does: with 1,000,000 customers that cost a fifth of the engine's rate."""
        for customer_id in run.changed:
            state = run.states[customer_id]
            if state is None or customer_id in run.returning:
                self.cache.put(run.partition, customer_id, state)  # None: no longer stored

    def _count_outputs(self, run: Run) -> None:
        """Counted once the outputs are durable, a labelled counter at a time."""
        for labels, count in run.decision_labels.items():
            self.metrics.decisions.labels(*labels).inc(count)
        for channel, count in run.outbound_channels.items():
            self.metrics.outbound.labels(channel).inc(count)

    def _maybe_fail(self, point: str) -> None:
        if self.failpoint == point:
            log.warning("failpoint %s: exiting as if killed", point)
            os._exit(137)

    def _state_changes(self, run: Run) -> dict[bytes, bytes | None]:
        changes: dict[bytes, bytes | None] = {}
        backlog_change = 0
        for customer_id in sorted(run.changed):
            state = run.states[customer_id]
            before = run.due_before[customer_id]
            after = state.next_due if state else None
            changes[state_key(customer_id)] = encode_state(state) if state else None
            if before != after:
                if before is not None:
                    changes[due_key(before, customer_id)] = None
                if after is not None:
                    changes[due_key(after, customer_id)] = b""
            backlog_change += (len(state.pending) if state else 0) - run.pending_before[customer_id]
        self._count_backlog(run.partition, backlog_change)
        checkpoint = {**run.recovered.checkpoint(self.positions[run.partition]), **run.inputs}
        changes[CHECKPOINT_KEY] = msgpack.packb(checkpoint)
        return changes

    def _count_backlog(self, partition: int, change: int) -> None:
        self.backlog[partition] = self.backlog.get(partition, 0) + change
        self.metrics.deferred_backlog.labels(str(partition)).set(self.backlog[partition])

    # -- making a partition ready ---------------------------------------------------------------

    async def _ready(self, partitions: Iterable[int]) -> None:
        """Recover these partitions (and any other assigned one not yet ready) before use."""
        waiting = (self.assigned | set(partitions)) - set(self.recovered)
        if not waiting:
            return
        self.cache.forget(waiting)
        started = time.perf_counter()
        found = await recover_partitions(waiting, self.topics, self.store, self.io, self._schemas)
        log.info(
            "partitions %s: outputs read back in %.2f s",
            sorted(waiting),
            time.perf_counter() - started,
        )
        runs = []
        for partition, (recovered, positions) in sorted(found.items()):
            self.positions[partition] = positions
            self.inputs[partition] = self._stored_inputs(partition)
            self.backlog[partition] = self._count_held(partition)
            runs.append(Run(partition, recovered, dict(self.inputs[partition])))
            self._adopt_released(runs[-1])
        await self._flush(runs)  # also stores the first checkpoint of a new partition
        for run in runs:
            self.recovered[run.partition] = run.recovered

    def _new_run(self, partition: int) -> Run:
        return Run(partition, self.recovered[partition], dict(self.inputs[partition]))

    def _stored_inputs(self, partition: int) -> dict[str, int]:
        checkpoint = read_checkpoint(self.store, partition)
        return {topic: checkpoint[topic] for topic in self.topics.inputs if topic in checkpoint}

    def _adopt_released(self, run: Run) -> None:
        """Held candidates whose final decision was published before the crash: adopt it now,
        before any release could decide them a second time. And what the stored state already
        reflects needs no adopting at all."""
        recovered = run.recovered
        for customer_id in sorted(recovered.customers()):
            state = self._state(run, customer_id)
            for candidate in [p.candidate for p in state.pending] if state else []:
                logged = recovered.logged(candidate.message_id)
                current = run.states[customer_id]
                if logged is not None and logged[0].outcome is not Outcome.DEFERRED and current:
                    self._adopt(run, candidate, current, logged)
        for message_id, customer_id in recovered.owners().items():
            state = run.states.get(customer_id)
            if state is not None and message_id in state.decided:
                recovered.applied(message_id)

    def _count_held(self, partition: int) -> int:
        held = 0
        for key in self.store.keys(partition, DUE_PREFIX, DUE_PREFIX + b"\xff"):
            raw = self.store.get(partition, state_key(customer_of_due_key(key)))
            held += len(decode_state(raw).pending) if raw else 0
        return held

    def ready_partitions(self) -> list[int]:
        return sorted(self.recovered)
