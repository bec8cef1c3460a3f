"""After a crash: find the outputs that reached Kafka although the state that explains them did not.

Each durable write of a partition's state also stores a checkpoint: per output topic, the offset
from which its records may not be reflected in the state yet. Those records are read back when
the partition is assigned. Their decisions go to the core as `logged` (a candidate that comes
round again takes its published decision instead of a new one), and nothing already on a topic
is published a second time.

The checkpoint never moves past a record read back but not yet reflected in the state: if the
worker dies again before that, the next one reads it back too.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import msgpack

from app.codecs.avro import Schemas, WireError
from app.codecs.records import decision_from_dict, outbound_from_dict
from app.config import TopicNames
from app.policy.engine import reflects
from app.policy.model import Applied, CustomerState, Decision, OutboundMessage, Outcome
from app.stream.io import Offsets, RecordIO, TailRecord
from app.stream.store import CHECKPOINT_KEY, PartitionStore

log = logging.getLogger(__name__)

RECOVERED_REASON = "recovered_from_outbound"
DeadLetterSource = tuple[str, int, int]  # input topic, partition, offset


@dataclass
class Recovered:
    decisions: dict[str, Decision] = field(default_factory=dict)  # the latest per message_id
    sent: dict[str, OutboundMessage] = field(default_factory=dict)
    dead_letters: set[DeadLetterSource] = field(default_factory=set)
    transitions: set[str] = field(default_factory=set)  # transition_id
    signals: set[str] = field(default_factory=set)  # signal_id
    # per output topic: what was read back and is not in the state yet -> its offset
    unapplied: dict[str, dict[Hashable, int]] = field(default_factory=dict)
    logged: dict[str, Decision] = field(default_factory=dict)  # for the core: see `published`
    not_repeated: Counter[str] = field(default_factory=Counter)  # outputs kept from going twice

    def published(self) -> dict[str, Decision]:
        """Every decision already made: those on the decisions topic, and for an outbound
        message without its decision record (the crash fell between the two), the decision it
        implies, rebuilt: a message that went out was sent."""
        rebuilt = {
            m.message_id: Decision(
                message_id=m.message_id,
                customer_id=m.customer_id,
                outcome=Outcome.SENT,
                channel=m.channel,
                reasons=(RECOVERED_REASON,),
                policy_version=m.policy_version,
                decided_at=m.sent_at,
                category=m.category,
            )
            for m in self.sent.values()
            if m.message_id not in self.decisions
        }
        return {**rebuilt, **self.decisions}

    def unpublished(self, applied: Applied) -> Applied:
        """The result without the records that are on their topics already."""
        if not self.logged and not self.transitions and not self.signals:
            return applied
        decisions = tuple(d for d in applied.decisions if not self._on_topic(d))
        outbound = tuple(m for m in applied.outbound if m.message_id not in self.sent)
        moved = tuple(t for t in applied.transitions if t.transition_id not in self.transitions)
        self.not_repeated["decision"] += len(applied.decisions) - len(decisions)
        self.not_repeated["outbound"] += len(applied.outbound) - len(outbound)
        signals = tuple(s for s in applied.signals if s.signal_id not in self.signals)
        self.not_repeated["transition"] += len(applied.transitions) - len(moved)
        self.not_repeated["signal"] += len(applied.signals) - len(signals)
        return replace(
            applied, decisions=decisions, outbound=outbound, transitions=moved, signals=signals
        )

    def _on_topic(self, decision: Decision) -> bool:
        latest = self.decisions.get(decision.message_id)
        if latest is None:
            return False
        # A deferral is on the topic whenever any decision for the message is; a final one
        # only if the latest is final.
        return decision.outcome is Outcome.DEFERRED or latest.outcome is not Outcome.DEFERRED

    def dead_letter_published(self, topic: str, partition: int, offset: int) -> bool:
        published = (topic, partition, offset) in self.dead_letters
        self.not_repeated["dead_letter"] += published
        return published

    def mark_reflected(self, states: Mapping[str, CustomerState | None]) -> None:
        """The state now holds these decisions: the checkpoint may pass them."""
        for decision in [d for d in self.logged.values() if d.customer_id in states]:
            if reflects(states[decision.customer_id], decision):
                self._applied(decision.message_id)

    def mark_passed(self, partition: int, inputs: Mapping[str, int]) -> None:
        """Dead letters whose input record is behind the input position will not come again."""
        for source in [s for s in self.dead_letters if s[1] == partition]:
            if source[2] < inputs.get(source[0], 0):
                self._applied(source)

    def _applied(self, identity: Hashable) -> None:
        for pending in self.unapplied.values():
            pending.pop(identity, None)
        if isinstance(identity, str):
            self.logged.pop(identity, None)  # the state holds it: the core needs it no more

    def checkpoint(self, positions: dict[str, int]) -> dict[str, int]:
        """Where the next recovery must start reading each output topic."""
        return {
            topic: min([position, *self.unapplied.get(topic, {}).values()])
            for topic, position in positions.items()
        }


def read_checkpoint(store: PartitionStore, partition: int) -> dict[str, int]:
    """The partition's last durable checkpoint: next offset per output and input topic."""
    raw = store.get(partition, CHECKPOINT_KEY)
    return msgpack.unpackb(raw) if raw is not None else {}


async def recover_partitions(
    partitions: Iterable[int],
    topics: TopicNames,
    store: PartitionStore,
    io: RecordIO,
    schemas: Schemas,
) -> dict[int, tuple[Recovered, dict[str, int]]]:
    """Per partition: what its output topics hold beyond its checkpoint, and where they end.

    A partition without a checkpoint has never made anything durable: its outputs start from
    the current end of each output topic. All partitions are read in one pass.
    """
    starts: Offsets = {}
    for partition in partitions:
        checkpoint = read_checkpoint(store, partition)
        for topic in topics.outputs:
            # -1: from the current end (the topic is new to this partition's checkpoint)
            starts[(topic, partition)] = checkpoint.get(topic, -1)
    tails, ends = await io.read_tail(starts)
    found = {}
    for partition in {p for _, p in starts}:
        recovered = _read_back(
            {tp: records for tp, records in tails.items() if tp[1] == partition}, topics, schemas
        )
        if any(recovered.unapplied.values()):
            log.warning(
                "partition %d: %d decisions, %d outbound messages and %d dead letters were "
                "published after the last durable state; adopting them",
                partition,
                len(recovered.decisions),
                len(recovered.sent),
                len(recovered.dead_letters),
            )
        positions = {topic: end for (topic, p), end in ends.items() if p == partition}
        found[partition] = (recovered, positions)
    return found


def _read_back(
    tails: dict[tuple[str, int], list[TailRecord]], topics: TopicNames, schemas: Schemas
) -> Recovered:
    recovered = Recovered()
    outbound_topics = set(topics.outbound.values())
    for (topic, _), records in tails.items():
        pending = recovered.unapplied.setdefault(topic, {})
        for record in records:
            try:
                identity = _read_one(recovered, topic, record, topics, outbound_topics, schemas)
            except (WireError, KeyError, ValueError) as exc:
                log.error("cannot read back %s offset %d: %s", topic, record.offset, exc)
                continue
            if identity is not None:
                pending.setdefault(identity, record.offset)
    recovered.logged = recovered.published()
    return recovered


def _read_one(
    recovered: Recovered,
    topic: str,
    record: TailRecord,
    topics: TopicNames,
    outbound_topics: set[str],
    schemas: Schemas,
) -> Hashable | None:
    """File one record read back; its identity, or None if the checkpoint need not wait for it
    (a fence, a journey transition)."""
    if record.value is None:
        return None
    if topic == topics.decisions:
        decision = decision_from_dict(schemas["tact.Decision"].decode(record.value))
        recovered.decisions[decision.message_id] = decision
        return decision.message_id
    if topic in outbound_topics:
        message = outbound_from_dict(schemas["tact.OutboundMessage"].decode(record.value))
        recovered.sent[message.message_id] = message
        return message.message_id
    if topic == topics.journeys:
        # Kept from going twice while this worker owns the partition, but never holding the
        # checkpoint back: a transition can repeat, with its transition_id, only if the worker
        # dies twice before the replay reaches it.
        transition_id = schemas["tact.JourneyTransition"].decode(record.value)["transition_id"]
        recovered.transitions.add(transition_id)
        return None
    if topic == topics.signals:  # as a transition
        recovered.signals.add(schemas["tact.Signal"].decode(record.value)["signal_id"])
        return None
    letter = schemas["tact.DeadLetter"].decode(record.value)
    source = (letter["source_topic"], letter["source_partition"], letter["source_offset"])
    recovered.dead_letters.add(source)
    return source
