"""Records fetched but never applied, at the tail of a partition.

A fetch can be dropped between aiokafka and the agent (an event of an older generation, or one
taken while the flow was stopped, as Faust's own stream drops them). The records after it reveal
the gap (Processor._unread), unless the dropped records were the partition's last for now: the
consumer's position is then at the log end, nothing more is fetched, and the partition would sit
at its last applied offset until the next restart. `Undelivered` finds those partitions: the
consumer is ahead of what Tact has made durable, and that has not moved for `patience` seconds.
Reading again from there is always safe: records already applied are passed over by offset.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from app.stream import faust_private

log = logging.getLogger(__name__)

Offsets = dict[tuple[str, int], int]


@dataclass
class Undelivered:
    patience: float = 2.0
    _since: dict[tuple[str, int], tuple[int, float]] = field(default_factory=dict, init=False)

    def check(
        self, applied: Offsets, position: Callable[[tuple[str, int]], int | None], now: float
    ) -> Offsets:
        """The partitions to read again, and from where."""
        reread: Offsets = {}
        waiting: dict[tuple[str, int], tuple[int, float]] = {}
        for tp, offset in applied.items():
            at = position(tp)
            if at is None or at <= offset:
                continue
            seen = self._since.get(tp)
            since = seen[1] if seen is not None and seen[0] == offset else now
            if now - since >= self.patience:
                reread[tp] = offset
            else:
                waiting[tp] = (offset, since)
        self._since = waiting
        return reread


async def reread_undelivered(app: Any, watch: Undelivered) -> None:
    """Seek back every owned input partition whose fetched tail was never applied."""
    consumer = app.consumer
    applied = {
        # A topic not read since the checkpoint was read from the group's committed offset.
        (t, p): each.inputs[t]
        if t in each.inputs
        else faust_private.committed_in_place(consumer, TP(t, p))
        for p, each in app.processor.owned.items()
        for t in app.tact_settings.topics.inputs
    }
    for tp, offset in app.lanes.held_until().items():  # delivered, waiting their turn (lanes.py)
        if tp in applied:
            applied[tp] = max(applied[tp] or 0, offset)

    def position(tp: tuple[str, int]) -> int | None:
        return faust_private.position_in_place(consumer, TP(*tp))

    reread = watch.check(applied, position, time.monotonic())
    for (topic, partition), offset in reread.items():
        log.warning(
            "%s[%d]: read past offset %d, never applied; reading again", topic, partition, offset
        )
    await app.rewind(reread)
