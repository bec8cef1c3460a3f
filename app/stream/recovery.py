"""After a crash: find the outputs that reached Kafka although the state that explains them did not.

Each durable write of a partition's state also stores a checkpoint: per output topic, the offset
from which its records may not be reflected in the state yet. Those records are read back when
the partition is assigned; the decisions they show are adopted when their candidates come round
again (their input offsets were never committed), instead of being made a second time.

The checkpoint never moves past a record read back but not yet adopted: if the worker dies again
before adopting it, the next one reads it back too.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

import msgpack

from app.codecs.avro import Schemas, WireError
from app.codecs.records import decision_from_dict, outbound_from_dict
from app.config import TopicNames
from app.policy.model import Decision, OutboundMessage, Outcome
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
    # per output topic: what was read back and is not in the state yet -> its offset
    unapplied: dict[str, dict[Hashable, int]] = field(default_factory=dict)

    def logged(self, message_id: str) -> tuple[Decision, bool] | None:
        """The decision already made for this message, and whether it is on the decisions topic.

        An outbound message without its decision record (the crash fell between the two) means
        it was sent: that decision is rebuilt from the outbound message and must be published.
        """
        decision = self.decisions.get(message_id)
        if decision is not None:
            return decision, True
        message = self.sent.get(message_id)
        if message is None:
            return None
        rebuilt = Decision(
            message_id=message.message_id,
            customer_id=message.customer_id,
            outcome=Outcome.SENT,
            channel=message.channel,
            reasons=(RECOVERED_REASON,),
            policy_version=message.policy_version,
            decided_at=message.sent_at,
            category=message.category,
        )
        return rebuilt, False

    def owners(self) -> dict[str, str]:
        """message_id -> customer_id of everything read back."""
        owners = {m.message_id: m.customer_id for m in self.sent.values()}
        owners.update((d.message_id, d.customer_id) for d in self.decisions.values())
        return owners

    def customers(self) -> set[str]:
        return set(self.owners().values())

    def applied(self, identity: Hashable) -> None:
        """The state now reflects this message (or dead letter): the checkpoint may pass it."""
        for pending in self.unapplied.values():
            pending.pop(identity, None)

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
                if topic == topics.decisions:
                    decision = decision_from_dict(schemas["tact.Decision"].decode(record.value))
                    recovered.decisions[decision.message_id] = decision
                    pending.setdefault(decision.message_id, record.offset)
                elif topic in outbound_topics:
                    message = outbound_from_dict(
                        schemas["tact.OutboundMessage"].decode(record.value)
                    )
                    recovered.sent[message.message_id] = message
                    pending.setdefault(message.message_id, record.offset)
                elif topic == topics.dead_letters:
                    letter = schemas["tact.DeadLetter"].decode(record.value)
                    source = (
                        letter["source_topic"],
                        letter["source_partition"],
                        letter["source_offset"],
                    )
                    recovered.dead_letters.add(source)
                    pending.setdefault(source, record.offset)
            except (WireError, KeyError, ValueError) as exc:
                log.error("cannot read back %s offset %d: %s", topic, record.offset, exc)
    return recovered
