"""The worker's health for probes: live while its event loop turns, ready once every partition
it was assigned is recovered and deciding (and no rebalance is under way)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

STALLED_S = 30.0  # a loop that has not turned for this long is stuck: restart the worker


@dataclass
class Health:
    clock: Callable[[], float] = time.monotonic
    beat: float | None = None  # when the loop last turned (the heartbeat timer)
    assigned_once: bool = False
    rebalancing: Callable[[], bool] = lambda: False
    waiting: Callable[[], set[int]] = field(default=set)  # assigned partitions not ready yet

    def heartbeat(self) -> None:
        self.beat = self.clock()

    def live(self) -> tuple[bool, str]:
        if self.beat is None:
            return True, "starting"
        stalled = self.clock() - self.beat
        if stalled > STALLED_S:
            return False, f"the event loop has not turned for {stalled:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        alive, why = self.live()
        if not alive:
            return False, why
        if not self.assigned_once:
            return False, "no partitions assigned yet"
        if self.rebalancing():
            return False, "rebalancing"
        waiting = self.waiting()
        if waiting:
            return False, f"partitions {sorted(waiting)} are recovering"
        return True, "ok"
