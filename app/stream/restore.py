"""A table's changelog restored in bulk: each fetched run of records is one RocksDB write.

Faust's recovery takes every changelog record as an event of its own (through the conductor, a
queue and a wait per event) before it batches them into RocksDB: about 8,000 records a second,
most of the time a lost disk or a takeover spends restoring. Tact's consumer hands each fetched
run of a changelog partition being restored to `restore_run` instead: the run and the offset
Faust keeps beside the data go into the partition's RocksDB as one write batch, and Faust's
recovery is told the run's last offset, as it would have noted it applying the run itself.
Faust's rule is kept: a record at or below the offset recovery has already applied is not
applied again (a fetch from before a seek, or a partition read again after a rebalance).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from faust.stores.rocksdb import Store as RocksDBStore
from faust.types import TP

from app.stream import faust_private
from app.stream.store import write_rocksdb


class Restored(NamedTuple):
    copy: str  # "active" (a lost disk, a partition taken over) or "standby"
    records: int  # written; the others were applied before


def restore_run(tables: Any, tp: TP, records: Sequence[Any]) -> Restored | None:
    """Apply a fetched run of a changelog partition that recovery is restoring (active or
    standby) to its RocksDB. None, with nothing done, for any other partition or store: Faust's
    own path then sees the records."""
    recovery = tables.recovery
    table = recovery.tp_to_table.get(tp)
    if table is None or not isinstance(table.data, RocksDBStore):
        return None
    if tp in recovery.active_tps:
        copy, applied = "active", recovery.active_offsets
    elif tp in recovery.standby_tps:
        copy, applied = "standby", recovery.standby_offsets
    else:
        return None
    last = applied.get(tp)
    fresh = [record for record in records if last is None or record.offset > last]
    if fresh:
        offset = fresh[-1].offset
        changes: dict[bytes, bytes | None] = {record.key: record.value for record in fresh}
        changes[table.data.offset_key] = str(offset).encode()  # Faust's persisted offset
        write_rocksdb(faust_private.rocksdb_of(table, tp.partition), changes)
        applied[tp] = offset
    return Restored(copy, len(fresh))
