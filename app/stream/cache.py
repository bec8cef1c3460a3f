"""Decoded states of the customers seen most recently, exactly as last made durable.

A hit skips the RocksDB read and the msgpack decode, which together cost more than deciding.
Only the processor writes states, and it puts them here after their write is durable, so an entry
never differs from what RocksDB holds. A partition that leaves the worker is dropped whole: when
it comes back, its table may have been written by another worker.
"""

from __future__ import annotations

from app.policy.model import CustomerState


class StateCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[tuple[int, str], CustomerState] = {}

    def get(self, partition: int, customer_id: str) -> CustomerState | None:
        """The customer's state, or None if it is not cached."""
        key = (partition, customer_id)
        state = self._entries.pop(key, None)
        if state is not None:
            self._entries[key] = state  # now the most recently used
        return state

    def put(self, partition: int, customer_id: str, state: CustomerState | None) -> None:
        """Remember a durable state; None (a forgotten customer) removes the entry."""
        key = (partition, customer_id)
        self._entries.pop(key, None)
        if state is None or self.size <= 0:
            return
        self._entries[key] = state
        if len(self._entries) > self.size:
            del self._entries[next(iter(self._entries))]  # the least recently used

    def drop_partition(self, partition: int) -> None:
        for key in [key for key in self._entries if key[0] == partition]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
