"""Settings from the environment: a value that cannot work is refused with its name."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings


def test_settings_come_from_tact_variables_with_their_types(monkeypatch):
    monkeypatch.setenv("TACT_PARTITIONS", "12")
    monkeypatch.setenv("TACT_RESET_STATE", "true")
    monkeypatch.setenv("TACT_DATA_DIR", "/var/lib/tact")
    monkeypatch.setenv("TACT_SCHEMA_IDS", '{"tact.Candidate": 7}')
    settings = Settings.from_env(partitions=None)  # a flag not given leaves the variable
    assert (settings.partitions, settings.reset_state) == (12, True)
    assert settings.data_dir == Path("/var/lib/tact")
    assert settings.schema_ids == {"tact.Candidate": 7}
    assert Settings.from_env(partitions=3).partitions == 3  # a flag wins


@pytest.mark.parametrize(
    "name,value,message",
    [
        ("TACT_FETCH_MAX_RECORDS", "0", "TACT_FETCH_MAX_RECORDS='0': Input should be greater"),
        ("TACT_BROKER_KIND", "kafak", "TACT_BROKER_KIND='kafak': Input should be 'kafka' or"),
        ("TACT_PARTITIONS", "many", "TACT_PARTITIONS='many': Input should be a valid integer"),
        ("TACT_KAFKA_COMPRESSION", "lz5", "TACT_KAFKA_COMPRESSION='lz5': Input should be 'none'"),
    ],
)
def test_a_value_that_cannot_work_is_refused_by_name(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        Settings.from_env()


def test_batches_are_written_zstd_unless_told_otherwise():
    assert Settings().kafka_compression_type == "zstd"
    assert Settings(kafka_compression="lz4").kafka_compression_type == "lz4"
    assert Settings(kafka_compression="none").kafka_compression_type is None


def test_the_embedded_broker_gets_its_own_session_heartbeat_and_fetch_wait():
    tansu, kafka = Settings(broker_kind="tansu"), Settings(broker_kind="kafka")
    # Tansu holds a static member's join for S/2 and its sync for 3 s, neither counted as
    # contact: the session must outlast both and the first heartbeat after them.
    session, heartbeat = tansu.group_session_timeout_s, tansu.group_heartbeat_s
    assert session / 2 + 3 + heartbeat < session - 1.5
    assert (session, heartbeat) == (12.0, 0.5)
    assert tansu.fetch_wait_ms == 10
    assert (kafka.group_session_timeout_s, kafka.group_heartbeat_s, kafka.fetch_wait_ms) == (
        30.0,
        3.0,
        500,
    )


def test_the_group_instance_id_is_stable_per_data_dir_and_unique_between_them(tmp_path):
    one, other = Settings(data_dir=tmp_path / "a"), Settings(data_dir=tmp_path / "b")
    assert one.group_instance_id == Settings(data_dir=tmp_path / "a").group_instance_id
    assert one.group_instance_id != other.group_instance_id
    assert Settings(instance_id="none").group_instance_id is None
