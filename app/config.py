"""Settings: read once from the environment (TACT_<NAME>) and command-line flags, then passed down.

pydantic-settings reads and checks them: `TACT_PARTITIONS=0` or `TACT_BROKER_KIND=kafak` stop
the command with the setting's name and what it accepts.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.codecs.avro import MAX_RECORD_BYTES
from app.policy.model import CHANNELS


@dataclass(frozen=True)
class TopicNames:
    events: str
    candidates: str
    profiles: str
    decisions: str
    dead_letters: str
    outbound: Mapping[str, str]
    journeys: str = "journeys"
    signals: str = "signals"
    # Immediate candidates (codes, service notices): decided ahead of the candidates topic's
    # backlog, however long a campaign makes it (app/stream/lanes.py).
    urgent: str = "messages.candidates.urgent"

    @classmethod
    def with_prefix(cls, prefix: str) -> TopicNames:
        return cls(
            events=f"{prefix}customer.events",
            candidates=f"{prefix}messages.candidates",
            profiles=f"{prefix}customer.profiles",
            decisions=f"{prefix}decisions",
            dead_letters=f"{prefix}tact.dead-letters",
            outbound={channel: f"{prefix}outbound.{channel}" for channel in CHANNELS},
            journeys=f"{prefix}journeys",
            signals=f"{prefix}signals",
            urgent=f"{prefix}messages.candidates.urgent",
        )

    @property
    def inputs(self) -> tuple[str, ...]:
        """In dependency order: a candidate is decided after the profiles and events read
        before it, and one of the candidates topic after the urgent ones read before it."""
        return self.profiles, self.events, self.urgent, self.candidates

    @property
    def outputs(self) -> tuple[str, ...]:
        outbound = self.outbound.values()
        return (*outbound, self.decisions, self.dead_letters, self.journeys, self.signals)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TACT_", frozen=True, extra="forbid")

    broker: str = "kafka://127.0.0.1:9092"
    broker_kind: Literal["kafka", "tansu"] = "kafka"  # "tansu": the embedded broker (tansu.py)
    app_id: str = "tact"
    topic_prefix: str = ""
    partitions: int = Field(8, ge=1)
    replication: int = 1
    data_dir: Path = Path("tact-data")
    store: str = "rocksdb://"
    policy_path: Path | None = None
    # Kafka security, for the worker and every command that talks to Kafka (managed services):
    # SSL / SASL_SSL verify the broker with kafka_ssl_cafile (default: the system's CAs) and
    # present kafka_ssl_certfile + keyfile if the broker wants a client certificate.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = ""
    kafka_sasl_password_file: Path | None = None  # its first line, instead of the password
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: str = ""
    metrics_host: str = "0.0.0.0"
    metrics_port: int = 9464  # 0: no metrics endpoint
    # Each customer's live view over HTTP (GET /customers/{id}), answered by whichever worker
    # owns the customer. It holds personal data: on loopback unless configured otherwise, and
    # anywhere else only with a bearer token (view_token, or the first line of view_token_file).
    view_host: str = "127.0.0.1"
    view_port: int = 6066  # 0: no view
    view_advertised_host: str = ""  # how other workers reach this one (default: view_host, or
    # the host name when view_host is 0.0.0.0)
    view_token: str = ""
    view_token_file: Path | None = None
    # How often the worker looks for held work that fell due: a due step waits this long at most
    # before its release starts (each look is a range read of the due index per partition).
    release_interval_s: float = 0.1
    # The timer releases what fell due this long ago, not what is due this instant: an input
    # stamped before a step's time that is still on its way to the log (an exit, a goal) is then
    # applied first, as a replay would.
    release_grace_ms: int = Field(300, ge=0)
    rebalance_timeout_s: float = 60.0
    # 0: per broker. On Kafka 30 s (heartbeats every 3 s). The embedded Tansu broker holds a
    # static member's join for half the session timeout and its sync for 3 s, and counts
    # neither as contact: the member's first heartbeat comes S/2 + 3 s + one interval after its
    # last contact, and a member silent for longer than S is evicted. At 6 s that was 7 s, and
    # a group of two rebalanced every 7 s for minutes. There it is 12 s (9.5 s to the first
    # heartbeat, every 0.5 s): a worker is ready about 9 s after it starts (6 s join, 3 s sync).
    session_timeout_s: float = 0.0
    heartbeat_interval_s: float = 0.0
    # Faust's stream_recovery_delay: a sleep after each assignment before recovery and work start,
    # for more workers to join first. Every join, leave and takeover then idles its partitions
    # that much longer; a rebalance that comes during a recovery restarts it anyway.
    recovery_delay_s: float = 0.0
    standby_replicas: int = 0
    max_record_bytes: int = MAX_RECORD_BYTES
    # How long a fetch may wait at the broker for data. Kafka answers as soon as data arrives;
    # the embedded Tansu broker waits the whole time, so there it must be short. 0: per broker.
    fetch_max_wait_ms: int = 0
    # Records one fetch hands to the worker at most. With the few fetches queued behind it (see
    # QUEUED_FETCHES in app/stream/app.py), this bounds the input a worker holds in memory.
    fetch_max_records: int = Field(5000, ge=1)
    # While urgent candidates keep coming, each durable write takes at most this many records
    # of the candidates topic's backlog (app/stream/lanes.py): fewer, and an urgent candidate
    # waits for a shorter write in progress, while a campaign there is decided more slowly.
    bulk_per_write_busy: int = Field(30, ge=1)
    # How the batches Tact writes (outputs and the state changelog) are compressed; every Kafka
    # client reads each codec (zstd since Kafka 2.1). Long-history customers' states (4 KB each)
    # pack to an eleventh with zstd at 470 MB/s; aiokafka's lz4 is LZ4HC (90 MB/s, an eighth:
    # 15% of the worker's time under the latency load), snappy 1.3 GB/s to a fifth.
    kafka_compression: Literal["none", "zstd", "lz4", "snappy", "gzip"] = "zstd"
    rocksdb_block_cache_mb: int = 32
    rocksdb_write_buffer_mb: int = 16
    # Customers whose decoded state stays in memory after a write (0: none). It saves a RocksDB
    # read and a decode when the same customers come back soon; each costs about 4-8 KB of RSS.
    state_cache_customers: int = 20_000
    # The worker's static group membership (Kafka KIP-345): a restarted worker with the same id
    # takes its partitions back at once instead of waiting for its dead self to time out.
    # Empty: derived from the host name and the data directory (both stable across restarts,
    # and unique per worker); "none": dynamic membership.
    instance_id: str = ""
    # An input log that ends before this worker's stored position (the broker started over):
    # keep the customers' state and read the new log from its start (see log_reset.py).
    reset_state: bool = False
    schema_ids: dict[str, int] = Field(default_factory=dict)  # JSON: {"tact.Candidate": 7}
    # A Confluent-compatible Schema Registry (e.g. https://sr.example:8081): ids come from it,
    # and records written with other compatible versions of a schema are read (registry.py).
    schema_registry_url: str = ""
    schema_registry_user_info: str = ""  # "user:password", for basic auth
    # How long a starting worker tries to reach Kafka before it says it cannot, and exits.
    connect_timeout_s: float = Field(10.0, gt=0)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"  # json: one object per line, for log shippers
    # For crash tests only: exit like `kill -9` at a named point of the first run that reaches it
    # ("after_outputs": outputs acked, state not written; "after_changelog": changelog acked,
    # RocksDB and input offsets not written).
    failpoint: str = ""

    @field_validator("policy_path", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value  # TACT_POLICY_PATH= : the shipped policy

    @field_validator(
        "view_token_file",
        "kafka_sasl_password_file",
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        mode="before",
    )
    @classmethod
    def _no_file(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _sasl_needs_a_login(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and (self.kafka_sasl_password or self.kafka_sasl_password_file)
        ):
            raise ValueError(
                f"TACT_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "TACT_KAFKA_SASL_USERNAME and TACT_KAFKA_SASL_PASSWORD (or _PASSWORD_FILE)"
            )
        return self

    @property
    def kafka_sasl_secret(self) -> str:
        return _secret(
            self.kafka_sasl_password, self.kafka_sasl_password_file, "KAFKA_SASL_PASSWORD"
        )

    @property
    def bearer_token(self) -> str:
        """The view's token ("" for none): the setting, else the token file's first line."""
        return _secret(self.view_token, self.view_token_file, "VIEW_TOKEN")

    @property
    def view_url(self) -> str:
        """Where other workers (and tact explain) reach this worker's view."""
        host = self.view_advertised_host or (
            socket.gethostname() if self.view_host in ("0.0.0.0", "::") else self.view_host
        )
        return f"http://{host}:{self.view_port}"

    @property
    def topics(self) -> TopicNames:
        return TopicNames.with_prefix(self.topic_prefix)

    @property
    def kafka_compression_type(self) -> str | None:
        """The codec as aiokafka's producers take it."""
        return None if self.kafka_compression == "none" else self.kafka_compression

    @property
    def fetch_wait_ms(self) -> int:
        if self.fetch_max_wait_ms:
            return self.fetch_max_wait_ms
        return 10 if self.broker_kind == "tansu" else 500

    @property
    def group_session_timeout_s(self) -> float:
        return self.session_timeout_s or (12.0 if self.broker_kind == "tansu" else 30.0)

    @property
    def group_heartbeat_s(self) -> float:
        if self.heartbeat_interval_s:
            return self.heartbeat_interval_s
        return 0.5 if self.broker_kind == "tansu" else self.group_session_timeout_s / 10

    @property
    def group_instance_id(self) -> str | None:
        if self.instance_id == "none":
            return None
        if self.instance_id:
            return self.instance_id
        where = f"{socket.gethostname()}:{self.data_dir.resolve()}"
        return (
            f"{self.app_id}-{socket.gethostname()}-{hashlib.sha1(where.encode()).hexdigest()[:8]}"
        )

    @property
    def bootstrap_servers(self) -> str:
        """The broker list as aiokafka wants it: host:port[,host:port] without the scheme."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker.split(";"))

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """TACT_<NAME> environment variables, then explicit overrides (flags) on top."""
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            raise ValueError(_readable(exc)) from None


def _secret(value: str, path: Path | None, name: str) -> str:
    """A secret given as a setting, else as the first line of a file."""
    if value or path is None:
        return value
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ValueError(f"TACT_{name}_FILE={str(path)!r}: {exc}") from None
    return lines[0].strip() if lines else ""


def _readable(error: ValidationError) -> str:
    """One line per bad setting, named as the user wrote it."""
    lines = []
    for problem in error.errors():
        if not problem["loc"]:  # about several settings together
            lines.append(str(problem["msg"]).removeprefix("Value error, "))
            continue
        name = str(problem["loc"][0]) if problem["loc"] else "?"
        given = problem.get("input")
        lines.append(f"TACT_{name.upper()}={given!r}: {problem['msg']}")
    return "; ".join(lines)
