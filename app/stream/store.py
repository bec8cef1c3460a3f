"""Per-partition state in a Faust table: RocksDB (rocksdict) on disk, the changelog in Kafka.

Writes go to the changelog first and to RocksDB only once Kafka has acknowledged them, so the
local database never holds a change that recovery from the changelog would not reproduce.
A partition's whole run of changes is one RocksDB write batch.

Keys of the customers table:
  c/<customer_id>                 the customer's encoded state
  d/<due_at:013d>/<customer_id>   the customer holds a candidate due then (the release index)
  m/checkpoint                    output topic offsets as of the last durable write
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import rocksdict
from faust.types import TP

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


class PartitionStore(Protocol):
    def get(self, partition: int, key: bytes) -> bytes | None: ...

    def keys(self, partition: int, start: bytes, stop: bytes) -> Iterator[bytes]: ...

    async def write(
        self, changes: Mapping[int, Changes], failpoint: Callable[[str], None] = _nothing
    ) -> None:
        """Per partition: its changes, changelog first, then the local store."""


class TableStore:
    """The Faust table's RocksDB partitions, written through its changelog topic."""

    def __init__(self, table: Any, io: RecordIO) -> None:
        self.table = table
        self.io = io
        self.changelog = table.changelog_topic.get_topic_name()

    def _db(self, partition: int) -> rocksdict.Rdict:
        db: rocksdict.Rdict = self.table.data._db_for_partition(partition)
        return db

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
            batch = rocksdict.WriteBatch(raw_mode=True)
            for key, value in partition_changes.items():
                if value is None:
                    batch.delete(key)
                else:
                    batch.put(key, value)
            self._db(partition).write(batch)
            last_offset = offsets[(self.changelog, partition)] - 1
            self.table.data.set_persisted_offset(TP(self.changelog, partition), last_offset)


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
            data = self.partitions.setdefault(partition, {})
            for key, value in partition_changes.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
