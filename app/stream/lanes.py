"""Two lanes for candidates: the urgent topic's are decided at once, the candidates topic's in turn.

A campaign can put hundreds of thousands of candidates on the candidates topic at once. Decided
fetch after fetch in the order they came, a code or a service notice fetched behind them would
wait for all of them. So the agent takes every fetch that is waiting and splits it:
- profiles, events and urgent candidates join the next durable write, whatever waits before them;
- runs of the candidates topic join a backlog, and each durable write takes at most `per_write`
  of its records, oldest first; only `per_write_busy` while urgent candidates keep coming (one
  seen within `busy_s`), so that the write an urgent candidate waits for is short: a
  campaign then takes longer, the codes meanwhile much less (`tact bench`, urgent lane).
While the backlog holds more than `limit` records, the candidates topic is not fetched (paused),
so memory stays bounded while profiles, events and urgent candidates are still read.

Order: every topic partition is decided in offset order. A candidate is decided after the
profiles and events read before or with it (the consumer's rule, consumer.py); one of the
candidates topic also after the urgent candidates read before it; an urgent candidate may be
decided before candidates published earlier on the candidates topic: that is the lane.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.stream.consumer import Fetch, InputRun

TopicPartition = tuple[str, int]


@dataclass
class Lanes:
    bulk_topic: str  # the candidates topic
    urgent_topic: str
    per_write: int  # its records in one durable write, at most
    limit: int  # records held in the backlog before the bulk topic is paused
    per_write_busy: int  # ... while the urgent lane is busy (Settings.bulk_per_write_busy)
    busy_s: float = 60.0
    urgent_seen: float = float("-inf")  # when the last urgent run was fetched (monotonic s)
    backlog: deque[InputRun] = field(default_factory=deque)
    held: int = 0  # records in the backlog
    generation: int = -1  # the consumer generation the backlog was fetched in
    paused: bool = False

    def next_write(self, fetches: Iterable[Fetch], generation: int, now: float) -> list[InputRun]:
        """The runs of the next durable write: everything fetched but the candidates topic's,
        then the oldest of its backlog. A rebalance drops the backlog (it is fetched again)."""
        if generation != self.generation:
            self.forget()
            self.generation = generation
        first = []
        for fetch in fetches:
            for run in fetch.runs:
                if run.topic == self.bulk_topic:
                    self.backlog.append(run)
                    self.held += len(run.records)
                else:
                    first.append(run)
                    if run.topic == self.urgent_topic:
                        self.urgent_seen = now
        busy = now - self.urgent_seen < self.busy_s
        return first + self._take(
            min(self.per_write_busy, self.per_write) if busy else self.per_write
        )

    def _take(self, room: int) -> list[InputRun]:
        taken = []
        while self.backlog and room > 0:
            run = self.backlog.popleft()
            if len(run.records) > room:
                rest = InputRun(run.topic, run.partition, run.records[room:])
                self.backlog.appendleft(rest)
                run = InputRun(run.topic, run.partition, run.records[:room])
            taken.append(run)
            room -= len(run.records)
            self.held -= len(run.records)
        return taken

    def forget(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Drop the backlog (of these partitions only): they are read again from elsewhere."""
        if tps is None:
            self.backlog.clear()
        else:
            leaving = set(tps)
            self.backlog = deque(r for r in self.backlog if (r.topic, r.partition) not in leaving)
        self.held = sum(len(run.records) for run in self.backlog)

    def held_until(self) -> dict[TopicPartition, int]:
        """Per partition of the backlog, the offset after its last record held."""
        return {(r.topic, r.partition): r.records[-1].offset + 1 for r in self.backlog}

    @property
    def waiting(self) -> bool:
        return bool(self.backlog)

    def should_pause(self) -> bool:
        return not self.paused and self.held > self.limit

    def should_resume(self) -> bool:
        return self.paused and self.held <= self.limit // 2
