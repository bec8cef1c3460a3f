"""The one door to per-partition state: RocksDB (rocksdict) on disk, the changelog in Kafka.

Writes go to the changelog first and to RocksDB only once Kafka has acknowledged them, so the
local database never holds a change that recovery from the changelog would not reproduce.
A partition's whole run of changes is one RocksDB write batch. A run reads and writes customer
states through a `Transaction` (read-your-writes; quix-streams' PartitionTransaction).

Keys of the customers table:
  c/<customer_id>                 the customer's encoded state
  d/<due_at:013d>/<customer_id>   the customer holds work due then (the release index)
  m/checkpoint                    output and input positions as of the last durable write
  a/attempt                       local only, never in the changelog: the run being tried (guard.py)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import rocksdict
from faust.types import TP

from app.codecs.state import PackedState, decode_state, pack_state
from app.policy.model import CustomerState
from app.stream import faust_private
from app.stream.cache import StateCache
from app.stream.holding import Holding
from app.stream.io import OutRecord, RecordIO

STATE_PREFIX = b"c/"
DUE_PREFIX = b"d/"
CHECKPOINT_KEY = b"m/checkpoint"

Changes = Mapping[bytes, bytes | None]  # None deletes


def _nothing(point: str) -> None:
    """A named point in a write; crash tests can stop there (see Settings.failpoint)."""


def state_key(customer_id: str) -> bytes:
    return STATE_PREFIX + customer_id.encode()


def due_key(due_at: int, customer_id: str) -> bytes:
    return b"%s%013d/%s" % (DUE_PREFIX, due_at, customer_id.encode())


def customer_of_due_key(key: bytes) -> str:
    return key[len(DUE_PREFIX) + 14 :].decode()


def due_at_of_due_key(key: bytes) -> int:
    return int(key[len(DUE_PREFIX) : len(DUE_PREFIX) + 13])


def write_rocksdb(db: rocksdict.Rdict, changes: Changes) -> None:
    """Changes (None deletes) as one RocksDB write batch: all of them or none."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in changes.items():
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    db.write(batch)


class PartitionStore(Protocol):
    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def keys(self, partition: int, start: bytes, stop: bytes) -> Iterator[bytes]: ...

    async def write(
        self, changes: Mapping[int, Changes], failpoint: Callable[[str], None] = _nothing
    ) -> None:
        """Per partition: its changes, changelog first, then the local store."""

    def write_local(self, partition: int, changes: Changes) -> None:
        """Changes that only this worker's disk needs (never in the changelog)."""


class Transaction:
    """One partition's customer states in one run: each read once (the cache, else RocksDB),
    then what the run made of them, as one batch of changes with the release index kept."""

    def __init__(self, partition: int, store: PartitionStore, cache: StateCache) -> None:
        self.partition = partition
        self.store = store
        self.cache = cache
        self.before: dict[str, CustomerState | None] = {}  # as read
        self.states: dict[str, CustomerState | None] = {}  # as the run left them
        self.changed: set[str] = set()
        self.indexed: dict[str, int] = {}  # due index entries a release found, by customer
        self.earliest_due: int | None = None  # of the due index entries `changes` adds
        self.packed: dict[str, PackedState] = {}  # as read from the cache, then as written

    def get(self, customer_id: str) -> CustomerState | None:
        if customer_id not in self.states:
            cached = self.cache.get(self.partition, customer_id)
            if cached is not None:
                self.packed[customer_id] = cached
                state: CustomerState | None = cached.state
            else:
                raw = self.store.get(self.partition, state_key(customer_id))
                state = decode_state(raw) if raw is not None else None
            self.before[customer_id] = self.states[customer_id] = state
        return self.states[customer_id]

    def put(self, customer_id: str, state: CustomerState | None) -> None:
        self.get(customer_id)  # remember what it was
        self.states[customer_id] = state
        self.changed.add(customer_id)

    def changes(self) -> dict[bytes, bytes | None]:
        """The changed states, encoded, and the release index entries that follow from them."""
        changes: dict[bytes, bytes | None] = {}
        self.earliest_due = None
        for customer_id in sorted(self.changed):
            state, before = self.states[customer_id], self.before[customer_id]
            changes[state_key(customer_id)] = self._packed(customer_id, state)
            if customer_id in self.indexed or not _same_timers(before, state):
                self._index(customer_id, before, state, changes)
        return changes

    def _index(
        self,
        customer_id: str,
        before: CustomerState | None,
        state: CustomerState | None,
        changes: dict[bytes, bytes | None],
    ) -> None:
        """The release index entries that change with the customer's next due time."""
        due_before, due_after = _next_due(before), _next_due(state)
        stale = self.indexed.get(customer_id)
        if stale is not None and stale not in (due_before, due_after):
            changes[due_key(stale, customer_id)] = None  # an entry no state explains
        if due_before != due_after:
            if due_before is not None:
                changes[due_key(due_before, customer_id)] = None
            if due_after is not None:
                changes[due_key(due_after, customer_id)] = b""
                if self.earliest_due is None or due_after < self.earliest_due:
                    self.earliest_due = due_after

    def _packed(self, customer_id: str, state: CustomerState | None) -> bytes | None:
        """The state's bytes, packing only the parts it does not share with the state before."""
        if state is None:
            self.packed.pop(customer_id, None)
            return None
        packed = pack_state(state, self.packed.get(customer_id))
        self.packed[customer_id] = packed
        return packed.data

    def count_change(self, holding: Holding) -> None:
        """What the run changed in the partition's held candidates and live journeys."""
        for customer_id in self.changed:
            holding.change(self.before[customer_id], self.states[customer_id])

    def remember_written(self) -> None:
        """After a durable write: cache what it wrote for customers who had a state before it.
        One seen for the first time (most often a new profile) may not come back soon, and
        caching it would push out one who does: with 1,000,000 customers that cost a fifth of
        the engine's rate."""
        for customer_id in self.changed:
            if self.states[customer_id] is None or self.before[customer_id] is not None:
                packed = self.packed.get(customer_id)  # None: no longer stored
                self.cache.put(self.partition, customer_id, packed)


def _same_timers(before: CustomerState | None, state: CustomerState | None) -> bool:
    """Whether the two have the same next due time for certain: the same held candidates,
    journeys and sends awaiting delivery (the core keeps what it does not change)."""
    if before is None or state is None:
        return before is state
    return (
        before.pending is state.pending
        and before.journeys is state.journeys
        and before.awaiting is state.awaiting
    )


def _next_due(state: CustomerState | None) -> int | None:
    return state.next_due if state is not None else None


class TableStore:
    """The Faust table's RocksDB partitions, written through its changelog topic."""

    def __init__(self, table: Any, io: RecordIO) -> None:
        self.table = table
        self.io = io
        self.changelog = table.changelog_topic.get_topic_name()

    def _db(self, partition: int) -> rocksdict.Rdict:
        return faust_private.rocksdb_of(self.table, partition)

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self._db(partition).get(key)
        return value

    def keys(self, partition: int, start: bytes, stop: bytes) -> Iterator[bytes]:
        for key in self._db(partition).keys(from_key=start):
            assert isinstance(key, bytes)  # the table's keys are bytes
            if key >= stop:
                return
            yield key

    async def write(
        self, changes: Mapping[int, Changes], failpoint: Callable[[str], None] = _nothing
    ) -> None:
        records = [
            OutRecord(self.changelog, partition, key, value)
            for partition, partition_changes in changes.items()
            for key, value in partition_changes.items()
        ]
        if not records:
            return
        offsets = await self.io.send(records)
        failpoint("after_changelog")
        for partition, partition_changes in changes.items():
            self.write_local(partition, partition_changes)
            last_offset = offsets[(self.changelog, partition)] - 1
            self.table.data.set_persisted_offset(TP(self.changelog, partition), last_offset)

    def write_local(self, partition: int, changes: Changes) -> None:
        write_rocksdb(self._db(partition), changes)


@dataclass
class MemoryStore:
    """Dictionaries per partition, with the same changelog-first order, for component tests."""

    io: RecordIO
    changelog: str = "tact-customers-changelog"
    partitions: dict[int, dict[bytes, bytes]] = field(default_factory=dict)

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.partitions.get(partition, {}).get(key)

    def keys(self, partition: int, start: bytes, stop: bytes) -> Iterator[bytes]:
        data = self.partitions.get(partition, {})
        return iter(sorted(k for k in data if start <= k < stop))

    async def write(
        self, changes: Mapping[int, Changes], failpoint: Callable[[str], None] = _nothing
    ) -> None:
        await self.io.send(
            [
                OutRecord(self.changelog, partition, k, v)
                for partition, partition_changes in changes.items()
                for k, v in partition_changes.items()
            ]
        )
        for partition, partition_changes in changes.items():
            self.write_local(partition, partition_changes)

    def write_local(self, partition: int, changes: Changes) -> None:
        data = self.partitions.setdefault(partition, {})
        for key, value in changes.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
