"""A changelog run restored in bulk into the table's RocksDB, as Faust's recovery would apply it."""

from __future__ import annotations

from dataclasses import dataclass

from faust.types import TP

from app.config import Settings
from app.stream import faust_private
from app.stream.app import build_app
from app.stream.restore import restore_run


@dataclass
class Record:
    offset: int
    key: bytes
    value: bytes | None


def restoring(tmp_path, standby=False):
    app = build_app(Settings(data_dir=tmp_path, app_id="tact-restore"))
    table = next(iter(app.tables.values()))
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    recovery = app.tables.recovery
    (recovery.add_standby if standby else recovery.add_active)(table, tp)
    return app, table, tp


def test_a_run_is_written_with_its_offset_and_recovery_is_told(tmp_path):
    app, table, tp = restoring(tmp_path)
    run = [Record(0, b"c/a", b"1"), Record(1, b"c/b", b"2"), Record(2, b"c/a", None)]
    assert restore_run(app.tables, tp, run) == ("active", 3)
    db = faust_private.rocksdb_of(table, 1)
    assert (db.get(b"c/a"), db.get(b"c/b")) == (None, b"2")
    assert table.persisted_offset(tp) == 2
    assert app.tables.recovery.active_offsets[tp] == 2


def test_records_recovery_has_applied_are_not_applied_again(tmp_path):
    """A run fetched again (from before a seek) must not write older values over newer ones."""
    app, table, tp = restoring(tmp_path, standby=True)
    first = [Record(0, b"c/a", b"old"), Record(1, b"c/a", b"new")]
    assert restore_run(app.tables, tp, first) == ("standby", 2)
    again = [Record(0, b"c/a", b"old"), Record(2, b"c/b", b"2")]
    assert restore_run(app.tables, tp, again) == ("standby", 1)
    db = faust_private.rocksdb_of(table, 1)
    assert (db.get(b"c/a"), db.get(b"c/b")) == (b"new", b"2")
    assert app.tables.recovery.standby_offsets[tp] == 2


def test_a_partition_recovery_does_not_restore_is_left_to_faust(tmp_path):
    app, table, _ = restoring(tmp_path)
    other = TP(table.changelog_topic.get_topic_name(), 2)
    assert restore_run(app.tables, other, [Record(0, b"c/a", b"1")]) is None
    assert faust_private.rocksdb_of(table, 2).get(b"c/a") is None
