"""build_app(): the one place that wires Tact's worker together, and names the concrete parts."""

from __future__ import annotations

import logging
import time
from typing import Any, cast

import faust
from faust.types import TP
from mode.utils.queues import ThrowableQueue

from app.clock import now_ms
from app.codecs.registry import schemas_for
from app.config import Settings
from app.kafka_security import client_options, faust_credentials
from app.metrics import Metrics
from app.policy.policy_file import load_policy
from app.policy.rules import Policy
from app.stream import faust_private
from app.stream.cache import StateCache
from app.stream.committer import Committer
from app.stream.consumer import (
    BATCH_CODEC,
    Fetch,
    InputRun,
    UniformBackpressureQueue,
    batching_transport,
    register_batch_codec,
)
from app.stream.guard import Attempts
from app.stream.health import Health
from app.stream.io import KafkaIO, MemoryIO, RecordIO, ensure_tact_topics
from app.stream.kafka_records import InputDecoder, OutputEncoder
from app.stream.lanes import Lanes
from app.stream.observe import Observer
from app.stream.processor import Parts, Processor, ProcessorClosed
from app.stream.store import MemoryStore, PartitionStore, TableStore
from app.stream.tables import PromptTableManager
from app.stream.tansu import fenced_table_manager
from app.stream.undelivered import Undelivered, reread_undelivered
from app.stream.web import faust_web_settings, wire_view
from app.stream.writer import Writer

log = logging.getLogger(__name__)

TABLE = "customers"
MAX_BATCH_RECORDS = 20_000  # at most this many records taken from the queued fetches at once
# Fetches waiting for the agent. When they are all there, the consumer stops fetching: without
# a bound it read a whole backlog into memory ahead of the agent (over 1 GB of RSS with
# 1,000,000 customers).
QUEUED_FETCHES = 8


class TactApp(faust.App):
    """A Faust app that also owns Tact's output producer and partition processor."""

    tact_settings: Settings
    io: RecordIO
    processor: Processor
    committer: Committer
    committed: dict[tuple[str, int], int]  # what commit_later offered to commit, for inspection
    decide_agent: Any
    health: Health
    lanes: Lanes

    def FlowControlQueue(
        self, maxsize: int | None = None, *, clear_on_resume: bool = False
    ) -> ThrowableQueue[Any]:
        return UniformBackpressureQueue(
            maxsize=maxsize, flow_control=self.flow_control, clear_on_resume=clear_on_resume
        )

    def commit_later(self, offsets: dict[tuple[str, int], int]) -> None:
        """These input offsets are durable: commit them (in the background)."""
        self.committed.update(offsets)
        if isinstance(self.io, KafkaIO):
            self.committer.offer({TP(t, p): o for (t, p), o in offsets.items()})

    async def rewind(self, offsets: dict[tuple[str, int], int]) -> None:
        """Records were not delivered: fetch these partitions again from these offsets."""
        for (topic, partition), offset in offsets.items():
            try:
                await self.consumer.seek(TP(topic, partition), offset)
            except Exception as exc:  # not ours any more: its next owner reads it anyway
                log.warning("could not seek %s[%d] back to %d: %r", topic, partition, offset, exc)

    def pause_inputs(self, partitions: set[int]) -> None:
        """Stop fetching these partitions' input (their log is behind their state)."""
        topics = self.tact_settings.topics.inputs
        self.consumer.pause_partitions({TP(t, p) for t in topics for p in partitions})

    async def read_inputs_from_start(self, partitions: set[int]) -> None:
        """The input logs of these partitions started over: read them from their beginning
        (the group's committed offsets may still point into the old logs)."""
        topics = self.tact_settings.topics.inputs
        await self.rewind({(t, p): 0 for t in topics for p in partitions})

    async def on_start(self) -> None:
        await super().on_start()
        if isinstance(self.io, KafkaIO):
            settings = self.tact_settings
            await ensure_tact_topics(
                settings.bootstrap_servers,
                settings.topics,
                settings.partitions,
                settings.replication,
                security=self.io.security,
            )
            await self.io.start(settings.topics.outputs)

    async def on_stop(self) -> None:
        await self.processor.close()  # let the batch in flight finish; take no more
        await self.committer.drain()
        await super().on_stop()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        if isinstance(self.io, KafkaIO):
            await self.io.stop()


def build_app(
    settings: Settings,
    *,
    policy: Policy | None = None,
    metrics: Metrics | None = None,
    io: RecordIO | None = None,
    store: PartitionStore | None = None,
) -> TactApp:
    """The worker's app. Tests pass their own parts; anything not given is built here."""
    register_batch_codec()
    policy = policy or load_policy(settings.policy_path)
    metrics = metrics or Metrics()
    in_memory = settings.store.startswith("memory")
    io = io or (MemoryIO() if in_memory else _kafka_io(settings))
    app = TactApp(settings.app_id, **_faust_settings(settings, io))
    app.tact_settings, app.io, app.committed = settings, io, {}
    app.committer = Committer(lambda offsets: app.consumer.commit_processed(offsets))  # type: ignore[attr-defined]
    transport = batching_transport(
        settings.topics.inputs, settings.fetch_wait_ms, settings.failpoint, metrics.count_restored
    )
    app.transport = transport(app.conf.broker_consumer, app)
    table = app.Table(
        TABLE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options=_rocksdb_options(settings),
    )
    store = store or (MemoryStore(io) if in_memory else TableStore(table, io))
    app.processor = Processor(_parts(app, settings, policy, metrics, store, io, in_memory))
    bulk_per_write = settings.fetch_max_records
    topics = settings.topics
    app.lanes = Lanes(
        topics.candidates,
        topics.urgent,
        bulk_per_write,
        QUEUED_FETCHES * bulk_per_write,
        settings.bulk_per_write_busy,
    )
    metrics.watch_input_lag(app.processor.input_lag)
    _wire_agent(app)
    _wire_release_timer(app, settings.release_interval_s)
    _wire_rebalance(app)
    _wire_health(app)
    wire_view(app, table)
    return app


def _kafka_io(settings: Settings) -> KafkaIO:
    return KafkaIO(
        settings.bootstrap_servers,
        idempotent=settings.broker_kind == "kafka",
        fetch_wait_ms=settings.fetch_wait_ms,
        security=client_options(settings),
        compression_type=settings.kafka_compression_type,
    )


def _parts(
    app: TactApp,
    settings: Settings,
    policy: Policy,
    metrics: Metrics,
    store: PartitionStore,
    io: RecordIO,
    in_memory: bool,
) -> Parts:
    schemas = schemas_for(settings)
    cache = StateCache(settings.state_cache_customers)
    metrics.watch_state_cache(cache)
    observer = Observer(metrics)
    encoder = OutputEncoder(settings.topics, schemas, now_ms, policy.version)
    attempts_file = None if in_memory else settings.data_dir / "attempts.bin"
    return Parts(
        topics=settings.topics,
        policy=policy,
        schemas=schemas,
        store=store,
        io=io,
        writer=Writer(io, store, cache, encoder, observer, settings.failpoint),
        observer=observer,
        cache=cache,
        attempts=Attempts(attempts_file, settings.partitions, settings.topics.inputs),
        decoder=InputDecoder(settings.topics, schemas, settings.max_record_bytes),
        clock=now_ms,
        release_grace_ms=settings.release_grace_ms,
        reset_state=settings.reset_state,
        failpoint=settings.failpoint,
        on_refused=app.pause_inputs,
        on_reset=app.read_inputs_from_start,
        **({} if in_memory else {"log_end": lambda t, p: app.consumer.highwater(TP(t, p))}),
    )


def _faust_settings(settings: Settings, io: RecordIO) -> dict[str, Any]:
    async def fence(tps: set[TP]) -> None:
        await io.fence((tp.topic, tp.partition) for tp in tps)

    manager = fenced_table_manager(fence) if settings.broker_kind == "tansu" else PromptTableManager
    return {
        "broker": settings.broker,
        "store": settings.store,
        "datadir": str(settings.data_dir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        "table_standby_replicas": settings.standby_replicas,
        "broker_rebalance_timeout": settings.rebalance_timeout_s,
        "broker_session_timeout": settings.group_session_timeout_s,
        "broker_heartbeat_interval": settings.group_heartbeat_s,
        "broker_request_timeout": max(settings.group_session_timeout_s + 5, 40.0),
        "stream_recovery_delay": settings.recovery_delay_s,
        "consumer_auto_offset_reset": "earliest",
        "broker_max_poll_records": settings.fetch_max_records,
        "consumer_group_instance_id": settings.group_instance_id,
        "TableManager": manager,
        "broker_credentials": faust_credentials(settings),
        **faust_web_settings(settings.view_host, settings.view_port, settings.view_url),
    }


def _rocksdb_options(settings: Settings) -> dict[str, int]:
    return {
        "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
        "max_write_buffer_number": 2,
    }


def _wire_agent(app: TactApp) -> None:
    inputs = app.topic(
        *app.tact_settings.topics.inputs,
        key_serializer="raw",
        value_serializer=BATCH_CODEC,
        acks=False,  # Tact commits a batch's offsets itself, once the batch is durable
    )
    inputs.maxsize = QUEUED_FETCHES  # app.topic() drops its maxsize argument (Faust 0.15.3)

    @app.agent(inputs, name="tact.decide", concurrency=1)
    async def decide(fetches: faust.StreamT[Fetch]) -> None:
        async for fetch in fetches:
            fetched = [fetch, *_queued_fetches(app, fetches)]
            while True:
                runs = app.lanes.next_write(fetched, app.consumer_generation_id, time.monotonic())
                if not await _make_durable(app, runs):
                    return
                _pace_bulk_topic(app)
                if not app.lanes.waiting:
                    break
                fetched = _queued_fetches(app, fetches)  # what came meanwhile goes first

    app.decide_agent = decide


async def _make_durable(app: TactApp, runs: list[InputRun]) -> bool:
    """Decide these runs and make them durable; False: the worker stops."""
    try:
        progress = await app.processor.process(runs)
    except ProcessorClosed:
        return False
    except Exception as exc:
        # Skipping the batch would lose it (later ones would commit past it): stop the worker
        # instead; its replacement decides it again from the committed offsets.
        log.exception("cannot make a batch durable; stopping")
        await app.crash(exc)
        return False
    app.lanes.forget(progress.rewind)
    await app.rewind(progress.rewind)
    app.commit_later(progress.done)
    return True


def _pace_bulk_topic(app: TactApp) -> None:
    """Stop fetching the candidates topic while its backlog is long; fetch it again once the
    backlog is half gone (lanes.py)."""
    lanes = app.lanes
    pause = lanes.should_pause()
    if not (pause or lanes.should_resume()):
        return
    processor = app.processor
    tps = {TP(lanes.bulk_topic, p) for p in processor.assigned - processor.refused}
    if pause:
        app.consumer.pause_partitions(tps)
    else:
        app.consumer.resume_partitions(tps)
    lanes.paused = pause


def _queued_fetches(app: TactApp, stream: faust.StreamT[Fetch]) -> list[Fetch]:
    """The fetches that arrived while the last batch was being made durable.

    Decided together, they cost one durable write (two produce round trips and a RocksDB
    batch) instead of one each: the busier the worker, the larger its batches. Like Faust's
    stream, this drops events fetched before a rebalance; their records are fetched again.
    """
    queue = faust_private.queue_of(stream)
    fetches: list[Fetch] = []
    records = 0
    while not queue.empty() and records < MAX_BATCH_RECORDS:
        event = queue.get_nowait()
        message = event.message
        if app.flow_control.is_active() and message.generation_id == app.consumer_generation_id:
            fetches.append(cast(Fetch, event.value))
            records += sum(len(run.records) for run in event.value.runs)
    return fetches


def _wire_release_timer(app: TactApp, interval: float) -> None:
    watch = Undelivered()

    @app.timer(interval, name="tact.release")  # type: ignore[untyped-decorator]
    async def release_due() -> None:
        if app.rebalancing or not app.flow_control.is_active():
            return
        await app.processor.release_due()
        await reread_undelivered(app, watch)


def _wire_health(app: TactApp) -> None:
    processor = app.processor
    app.health = Health(
        rebalancing=lambda: bool(app.rebalancing),
        waiting=lambda: processor.assigned - set(processor.owned),
    )

    @app.timer(1.0, name="tact.heartbeat")  # type: ignore[untyped-decorator]
    async def heartbeat() -> None:
        app.health.heartbeat()


def _wire_rebalance(app: TactApp) -> None:
    inputs = set(app.tact_settings.topics.inputs)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        await app.processor.revoke({tp.partition for tp in revoked if tp.topic in inputs})
        await app.committer.drain()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic in inputs}
        app.processor.assign(partitions)
        app.health.assigned_once = True
        log.info("this worker decides partitions %s", sorted(partitions))
