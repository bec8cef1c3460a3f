"""After a crash: find the outputs that reached Kafka although the state that explains them did not.

Each durable write of a partition's state also stores a checkpoint: the next offset of every
output topic of that partition. Everything on the output topics after the checkpoint was
published by runs whose state may be missing. Those records are read back once, when the
partition is assigned, and the decisions they show are adopted instead of being made again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgpack

from app.codecs.avro import Schemas, WireError
from app.codecs.records import decision_from_dict, outbound_from_dict
from app.config import TopicNames
from app.policy.model import Decision, Outcome, OutboundMessage
from app.stream.io import Offsets, RecordIO, TailRecord
from app.stream.store import CHECKPOINT_KEY, PartitionStore

log = logging.getLogger(__name__)

RECOVERED_REASON = "recovered_from_outbound"


@dataclass
class Recovered:
    decisions: dict[str, Decision] = field(default_factory=dict)  # the latest per message_id
    sent: dict[str, OutboundMessage] = field(default_factory=dict)
    dead_letters: set[tuple[str, int, int]] = field(default_factory=set)

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

    def message_ids(self) -> set[str]:
        return set(self.decisions) | set(self.sent)


async def recover_partitions(
    partitions: Iterable[int], topics: TopicNames, store: PartitionStore, io: RecordIO,
    schemas: Schemas,
) -> dict[int, tuple[Recovered, dict[str, int]]]:
    """Per partition: what its output topics hold beyond its checkpoint, and where they end.

    A partition without a checkpoint has never made anything durable: its outputs start from
    the current end of each output topic. All partitions are read in one pass.
    """
    starts: Offsets = {}
    for partition in partitions:
        raw = store.get(partition, CHECKPOINT_KEY)
        checkpoint: dict[str, int] = msgpack.unpackb(raw) if raw is not None else {}
        for topic in topics.outputs:
            # -1: from the current end (the topic is new to this partition's checkpoint)
            starts[(topic, partition)] = checkpoint.get(topic, -1)
    tails, ends = await io.read_tail(starts)
    found = {}
    for partition in {p for _, p in starts}:
        partition_tails = {tp: records for tp, records in tails.items() if tp[1] == partition}
        recovered = _read_back(partition_tails, topics, schemas)
        if recovered.message_ids() or recovered.dead_letters:
            log.warning(
                "partition %d: %d decisions, %d outbound messages and %d dead letters were "
                "published after the last durable state; adopting them", partition,
                len(recovered.decisions), len(recovered.sent), len(recovered.dead_letters),
            )
        positions = {topic: ends[(topic, p)] for topic, p in ends if p == partition}
        found[partition] = (recovered, positions)
    return found


def _read_back(
    tails: dict[tuple[str, int], list[TailRecord]], topics: TopicNames, schemas: Schemas
) -> Recovered:
    recovered = Recovered()
    outbound_topics = set(topics.outbound.values())
    for (topic, _), records in tails.items():
        for record in records:
            try:
                if topic == topics.decisions:
                    decision = decision_from_dict(schemas["tact.Decision"].decode(record.value))
                    recovered.decisions[decision.message_id] = decision
                elif topic in outbound_topics:
                    message = outbound_from_dict(schemas["tact.OutboundMessage"].decode(record.value))
                    recovered.sent[message.message_id] = message
                elif topic == topics.dead_letters:
                    letter = schemas["tact.DeadLetter"].decode(record.value)
                    recovered.dead_letters.add(
                        (letter["source_topic"], letter["source_partition"], letter["source_offset"])
                    )
            except (WireError, KeyError, ValueError) as exc:
                log.error("cannot read back %s offset %d: %s", topic, record.offset, exc)
    return recovered
