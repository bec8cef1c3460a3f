"""The decoded states of the customers in use, in front of RocksDB (20,000 by default).

A hit saves a RocksDB read and a msgpack decode, and the next write of the customer packs only
what changed (each state is kept with the bytes of its parts: codecs/state.py). The cache holds
only what the store holds: it is filled with what a run wrote, once that write is durable
(Transaction.remember_written). So it can be dropped at any moment, and it is whenever a
partition leaves or is recovered, or a write fails part-way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from app.codecs.state import PackedState
from app.collector import untrack


class StateCache:
    """At most `capacity` customers' states, the least recently used leaving first (0: off)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._states: OrderedDict[str, tuple[int, PackedState]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, partition: int, customer_id: str) -> PackedState | None:
        entry = self._states.get(customer_id)
        if entry is None or entry[0] != partition:
            self.misses += 1
            return None
        self.hits += 1
        self._states.move_to_end(customer_id)
        return entry[1]

    def put(self, partition: int, customer_id: str, state: PackedState | None) -> None:
        """`state` is what the store now holds for this customer (None: nothing)."""
        if state is None or not self.capacity:
            self._states.pop(customer_id, None)
            return
        # Immutable, so never in a cycle: the collector need not walk it. (The tuples of bytes
        # beside it it leaves by itself, at its first look.)
        untrack(state.state)
        self._states[customer_id] = (partition, state)
        self._states.move_to_end(customer_id)
        if len(self._states) > self.capacity:
            self._states.popitem(last=False)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        leaving = set(partitions)
        self._states = OrderedDict(
            (customer_id, entry)
            for customer_id, entry in self._states.items()
            if entry[0] not in leaving
        )
