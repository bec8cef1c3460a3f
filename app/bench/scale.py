"""Scale-out (`tact bench --workers N`): N workers in one consumer group decide the engine's
records on topics of their own, with a standby replica of every table partition; then one
worker joins, one leaves, and one is killed (kill -9) while the others take its partitions over.

A rebalance is timed from the moment a worker is started, stopped or killed until the group has
settled: the live workers own every partition between them and each one answers ready (every
partition it owns recovered and deciding, no rebalance under way).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.waiting import wait_until
from app.worker_process import WorkerProcess

STANDBY_REPLICAS = 1


@dataclass
class Group:
    workers: list[WorkerProcess]
    partitions: int

    @property
    def alive(self) -> list[WorkerProcess]:
        return [w for w in self.workers if w.alive]

    def decided(self) -> float:
        return sum(w.metric("tact_input_records_total") for w in self.alive)

    def settled(self, joined: WorkerProcess | None = None) -> bool:
        """Every partition owned by a live worker that is ready (and `joined` owns some)."""
        live = self.alive
        owned = [w.metric("tact_assigned_partitions") for w in live]
        if sum(owned) != self.partitions:
            return False
        if joined is not None and joined.metric("tact_assigned_partitions") == 0:
            return False
        return all(w.probe("ready")[0] == 200 for w in live)

    def seconds_until_settled(self, started: float, joined: WorkerProcess | None = None) -> float:
        wait_until(lambda: self.settled(joined), 300, "the group to settle", every=0.1)
        return time.monotonic() - started


def measure_scale(
    start_worker: Callable[[int], WorkerProcess], workers: int, partitions: int, total: int
) -> dict[str, Any]:
    """`start_worker(member)` starts member `member` of the group on the pre-loaded topics."""
    group = Group([start_worker(member) for member in range(workers)], partitions)
    try:
        return _measure(group, start_worker, workers, total)
    finally:
        for worker in group.workers:
            worker.stop(timeout=60)


def _measure(
    group: Group, start_worker: Callable[[int], WorkerProcess], workers: int, total: int
) -> dict[str, Any]:
    wait_until(
        lambda: any(w.metric("tact_assigned_partitions") > 0 for w in group.workers),
        300,
        "a worker of the group to own partitions",
        every=0.1,
    )
    started = time.monotonic()
    wait_until(lambda: group.decided() >= total, 600, f"the group to decide {total:,}", every=0.25)
    seconds = time.monotonic() - started
    each = [round(w.metric("tact_input_records_total") / seconds) for w in group.workers]
    group.seconds_until_settled(time.monotonic())  # the first rebalances are over

    joined = start_worker(workers)
    group.workers.append(joined)
    join_s = group.seconds_until_settled(time.monotonic(), joined)

    stopped_at = time.monotonic()
    joined.stop(timeout=60)
    leave_s = group.seconds_until_settled(stopped_at)

    killed_at = time.monotonic()
    group.workers[0].kill()
    takeover_s = group.seconds_until_settled(killed_at)
    return {
        "workers": workers,
        "workers_events_per_s": round(total / seconds),
        "worker_events_per_s": each,
        "rebalance_join_s": round(join_s, 2),
        "rebalance_leave_s": round(leave_s, 2),
        "standby_replicas": STANDBY_REPLICAS,
        "standby_takeover_s": round(takeover_s, 2),
    }
