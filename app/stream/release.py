"""The release index: which customers hold work due by a time, without reading all of them.

One RocksDB key per customer with held work, `d/<due_at:013d>/<customer_id>` (store.py), kept by
every write of the customer's state; keys sort by due time, so what is due is a range read.
The read starts at the partition's floor (no key is due before it), not at the index's start:
RocksDB would otherwise walk the deleted keys of everything released before, on every tick.
Releases go in chunks of RELEASE_CHUNK customers, one durable write each, and the
worker takes its other input between chunks: 09:00 for a whole time zone does not stop the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from app.codecs.state import decode_state
from app.config import TopicNames
from app.stream.holding import Holding
from app.stream.store import (
    DUE_PREFIX,
    PartitionStore,
    customer_of_due_key,
    due_at_of_due_key,
    due_key,
    state_key,
)

if TYPE_CHECKING:
    from app.stream.writer import Owned

RELEASE_CHUNK = 1000  # customers released per durable write at most


def due_customers(
    store: PartitionStore, partition: int, clock: int, limit: int, floor: int = 0
) -> list[tuple[str, int]]:
    """Up to `limit` (customer, due time) of this partition due from `floor` to `clock`,
    earliest first."""
    due = []
    for key in store.keys(partition, due_key(floor, ""), due_key(clock + 1, "")):
        due.append((customer_of_due_key(key), due_at_of_due_key(key)))
        if len(due) >= limit:
            break
    return due


def floor_after(floor: int, due: list[tuple[str, int]], limit: int, clock: int) -> int:
    """Where the next range read may start: past `clock` once everything due by it was read
    (what a release writes is due later), else at the last due time read."""
    return max(floor, clock + 1 if len(due) < limit else due[-1][1])


def count_held(store: PartitionStore, partition: int) -> Holding:
    """Candidates held and journey instances live in this partition (every customer with either
    has a release key): read once when the partition is assigned."""
    holding = Holding()
    for key in store.keys(partition, DUE_PREFIX, DUE_PREFIX + b"\xff"):
        raw = store.get(partition, state_key(customer_of_due_key(key)))
        holding.add(decode_state(raw) if raw else None, +1)
    return holding


def release_until(
    owned: Owned,
    topics: TopicNames,
    log_end: Callable[[str, int], int | None],
    partition: int,
    clock: int,
) -> int:
    """The wall clock once the partition's input is read to the end of its logs; while input
    still waits (after a restart, under load), only up to the latest time read, so nothing is
    released ahead of an event from before its time that a replay would apply first (an exit,
    a goal, an unsubscribe)."""
    for topic in topics.inputs:
        end = log_end(topic, partition)
        if end is None or owned.inputs.get(topic, 0) < end:
            return min(clock, owned.watermark)
    return clock
