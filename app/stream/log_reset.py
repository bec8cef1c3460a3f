"""An input log that ends before the position this worker's state has read it to.

That happens when a topic is recreated or a broker loses its data while the worker's RocksDB
survives (docker compose `down` then `up` without a Kafka volume did exactly this). Left alone,
the worker would pass over every new record as already read, without a word. The rule: such a
partition is not decided until the operator says what the new log is. `--reset-state` says it
is the same business starting over: what Tact knows of the customers (consent, sends, dedupe) is
kept and written again to the changelog, and the partition is read from the new log's start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.stream.io import RecordIO


@dataclass(frozen=True)
class LogBehind:
    topic: str
    partition: int
    read_to: int  # what this worker's state has read
    ends_at: int  # where the log ends now

    def explain(self, resetting: bool) -> str:
        what = (
            f"{self.topic}[{self.partition}] ends at offset {self.ends_at:,}, but this worker's "
            f"state has read it to {self.read_to:,}: the topic was recreated, or the broker lost "
            "its data"
        )
        if resetting:
            return what + "; --reset-state: keeping the customers' state, reading the new log"
        return (
            what + ". This partition is not decided, since every new record would be passed "
            "over. If the broker started over, restart the worker with --reset-state "
            "(TACT_RESET_STATE=1); if it points at the wrong cluster or topic prefix, fix that."
        )


async def logs_behind(io: RecordIO, inputs: Mapping[int, Mapping[str, int]]) -> list[LogBehind]:
    """Per partition and input topic, where the stored position is past the log's end."""
    positions = {(t, p): at for p, topics in inputs.items() for t, at in topics.items() if at}
    ends = await io.log_ends(positions)
    return [
        LogBehind(topic, partition, at, ends[(topic, partition)])
        for (topic, partition), at in sorted(positions.items())
        if ends[(topic, partition)] < at
    ]
