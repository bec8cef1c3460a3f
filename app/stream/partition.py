"""One partition's run between two durable points: inputs decided, results staged per customer.

A record that cannot be read, or that the core refuses or fails on, becomes a dead letter with
the reason and its coordinates; the run goes on. Nothing is published or stored here (writer.py).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from app.policy.engine import Due, Input, apply_record, decided_at, record_time
from app.policy.model import Applied
from app.policy.rules import Policy
from app.stream.kafka_records import InputDecoder, RawRecord, Unusable
from app.stream.recovery import Recovered
from app.stream.store import Transaction

log = logging.getLogger(__name__)

Source = tuple[str, RawRecord]  # input topic, record


@dataclass
class CustomerWork:
    """What a run did for one customer: the results to publish, and the records behind them."""

    results: list[Applied] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)


@dataclass
class DeadLetter:
    topic: str
    record: RawRecord
    error: str
    kind: str


class PartitionRun:
    def __init__(
        self,
        partition: int,
        inputs: dict[str, int],
        recovered: Recovered,
        transaction: Transaction,
        decoder: InputDecoder,
        policy: Policy,
    ) -> None:
        self.partition = partition
        self.inputs = dict(inputs)  # next input offset per input topic, as this run leaves it
        self.recovered = recovered
        self.transaction = transaction
        self.decoder = decoder
        self.policy = policy
        self.work: dict[str, CustomerWork] = {}
        self.dead_letters: list[DeadLetter] = []
        self.read: Counter[str] = Counter()  # input records per topic
        self.repeated = 0  # candidates decided before (redelivered)
        self.released = 0  # decisions made because a held candidate's time came
        self.watermark = 0  # the latest time an input of this run was decided at

    def apply(self, topic: str, record: RawRecord, clock: int) -> None:
        self.read[topic] += 1
        try:
            item = self.decoder.decode(topic, record)
        except Unusable as exc:
            self.dead_letter(topic, record, str(exc), exc.kind)
            return
        except Exception as exc:  # a fault in Tact must not stop the partition: say which record
            self._failed((topic, record), exc)
            return
        self._apply(item, clock, (topic, record))

    def apply_due(self, customer_id: str, due_at: int, clock: int) -> None:
        """The release timer's input for a customer the due index names at `due_at`."""
        self.transaction.indexed[customer_id] = due_at
        applied = self._apply(Due(customer_id), clock, None)
        self.released += len(applied.decisions) if applied else 0

    def _apply(self, item: Input, clock: int, source: Source | None) -> Applied | None:
        try:
            state = self.transaction.get(item.customer_id)
            applied = apply_record(state, item, clock, self.policy, self.recovered.logged)
        except Exception as exc:  # a fault in Tact must not stop the partition: say which record
            self._failed(source, exc)
            return None
        if applied.problem and source is not None:
            self.dead_letter(*source, applied.problem, "invalid")
            return None
        self.repeated += applied.repeated
        if source is not None and record_time(item) is not None:  # a profile has no time
            self.watermark = max(self.watermark, decided_at(item, clock))
        self.transaction.put(item.customer_id, applied.state)
        work = self.work.get(item.customer_id)
        if work is None:
            work = self.work[item.customer_id] = CustomerWork()
        work.results.append(self.recovered.unpublished(applied))
        if source is not None:
            work.sources.append(source)
        return applied

    def _failed(self, source: Source | None, exc: Exception) -> None:
        where = f"{source[0]}[{self.partition}]@{source[1].offset}" if source else "a release"
        log.error("could not apply %s: %s", where, type(exc).__name__, exc_info=exc)
        if source is not None:
            error = f"Tact could not apply this record ({type(exc).__name__}: {exc})"
            self.dead_letter(*source, error[:2000], "failed")

    def set_aside(self, topic: str, record: RawRecord) -> None:
        """A record the worker died on twice (guard.py): a dead letter, never applied again."""
        self.read[topic] += 1
        why = "the worker stopped twice while deciding this record; it is set aside"
        self.dead_letter(topic, record, why, "poison")

    def dead_letter(self, topic: str, record: RawRecord, error: str, kind: str) -> None:
        if self.recovered.dead_letter_published(topic, self.partition, record.offset):
            return  # published before a crash; not twice
        self.dead_letters.append(DeadLetter(topic, record, error, kind))

    def roll_back(self, customer_id: str, why: str) -> None:
        """Undo what this run did for one customer; its records become dead letters."""
        self.transaction.put(customer_id, self.transaction.before[customer_id])
        self.transaction.changed.discard(customer_id)
        work = self.work.pop(customer_id, CustomerWork())
        for topic, record in work.sources:
            self.dead_letter(topic, record, why, "state_limit")

    def settle_recovery(self) -> None:
        """What this run's states now hold of the outputs read back after a crash."""
        self.recovered.mark_reflected(self.transaction.states)
        self.recovered.mark_passed(self.partition, self.inputs)
