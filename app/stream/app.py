"""build_app(): the one place that wires Tact's Faust app together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
from faust.tables import TableManager
from faust.types import TP
from mode.utils.queues import ThrowableQueue

from app.codecs.avro import Schemas
from app.config import Settings
from app.metrics import Metrics
from app.policy.policy_file import load_policy
from app.policy.rules import Policy
from app.stream.cache import StateCache
from app.stream.io import KafkaIO, MemoryIO, RecordIO, ensure_tact_topics
from app.stream.processor import Processor, ProcessorClosed
from app.stream.store import MemoryStore, PartitionStore, TableStore
from app.stream.transport import BATCH_CODEC, Fetch, batching_transport, fenced_table_manager

log = logging.getLogger(__name__)

TABLE = "customers"
MAX_BATCH_RECORDS = 20_000  # at most this many records joined into one durable write
# Fetches waiting for the agent. When they are all there, Faust stops handing over more and the
# consumer stops fetching: without a bound it read a whole backlog into memory ahead of the
# agent (over 1 GB of RSS with 1,000,000 customers).
QUEUED_FETCHES = 8


class UniformBackpressureQueue(ThrowableQueue[Any]):
    """A channel queue that holds input back only by being full.

    Faust pauses the partition a queued event came from once its queue is 80% full, and resumes
    it only as the queue drains (one partition per read below 40%, all of them when empty).
    Tact's event is a whole fetch labelled with one partition, and the other partitions keep
    the queue filled, so a paused partition could stay paused until the next rebalance. Here a
    full queue blocks the consumer instead, which stops fetching every partition alike.
    """

    def in_pressure_high_state(self, callback: Callable[..., Any]) -> bool:
        return False


class TactApp(faust.App):
    """A Faust app that also owns Tact's output producer and partition writer."""

    def FlowControlQueue(
        self, maxsize: int | None = None, *, clear_on_resume: bool = False
    ) -> ThrowableQueue[Any]:
        return UniformBackpressureQueue(
            maxsize=maxsize, flow_control=self.flow_control, clear_on_resume=clear_on_resume
        )

    tact_settings: Settings
    io: RecordIO
    processor: Processor
    committed: dict[tuple[str, int], int]  # what commit_later offered to commit, for inspection
    decide_agent: Any

    committer: Committer

    def commit_later(self, offsets: dict[tuple[str, int], int]) -> None:
        """These input offsets are durable: commit them (in the background)."""
        self.committed.update(offsets)
        if isinstance(self.io, KafkaIO):
            self.committer.offer(
                {TP(topic, partition): o for (topic, partition), o in offsets.items()}
            )

    async def rewind(self, offsets: dict[tuple[str, int], int]) -> None:
        """Records were not delivered: fetch these partitions again from these offsets."""
        for (topic, partition), offset in offsets.items():
            try:
                await self.consumer.seek(TP(topic, partition), offset)
            except Exception as exc:  # not ours any more: its next owner reads it anyway
                log.warning("could not seek %s[%d] back to %d: %r", topic, partition, offset, exc)

    async def on_start(self) -> None:
        await super().on_start()
        if isinstance(self.io, KafkaIO):
            topics = self.tact_settings.topics
            settings = self.tact_settings
            await ensure_tact_topics(
                settings.bootstrap_servers, topics, settings.partitions, settings.replication
            )
            await self.io.start(topics.outputs)

    async def on_stop(self) -> None:
        await self.processor.close()  # let the fetch in flight finish; take no more
        await self.committer.drain()
        await super().on_stop()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        if isinstance(self.io, KafkaIO):
            await self.io.stop()


class Committer:
    """Commits input offsets in the background, newest first, at most once per `interval`.

    Committing is not needed for correctness (the checkpoint's input positions make a replay a
    no-op), only to bound how much is read again after a crash; so it never holds up deciding,
    and it is not worth a request per batch.
    """

    def __init__(
        self, commit: Callable[[dict[TP, int]], Awaitable[Any]], interval: float = 1.0
    ) -> None:
        self.commit = commit
        self.interval = interval
        self.pending: dict[TP, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.last = 0.0
        self.hurry = asyncio.Event()

    def offer(self, offsets: dict[TP, int]) -> None:
        self.pending.update(offsets)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._commit_pending())

    async def _commit_pending(self) -> None:
        while self.pending:
            wait = self.last + self.interval - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hurry.wait(), wait)
            offsets, self.pending = self.pending, {}
            self.last = time.monotonic()
            try:
                await self.commit(offsets)
            except Exception as exc:  # the next commit carries newer offsets anyway
                log.warning("could not commit input offsets: %r", exc)

    async def drain(self) -> None:
        """Commit what is pending now (partitions are leaving, or the worker is stopping)."""
        if self.task is not None:
            self.hurry.set()
            try:
                await self.task
            finally:
                self.hurry.clear()


def build_app(
    settings: Settings,
    *,
    policy: Policy | None = None,
    metrics: Metrics | None = None,
    io: RecordIO | None = None,
) -> TactApp:
    policy = policy or load_policy(settings.policy_path)
    metrics = metrics or Metrics()
    in_memory = settings.store.startswith("memory")
    io = io or (
        MemoryIO()
        if in_memory
        else KafkaIO(
            settings.bootstrap_servers,
            idempotent=settings.broker_kind == "kafka",
            fetch_wait_ms=settings.fetch_wait_ms,
        )
    )
    app = TactApp(settings.app_id, **_faust_settings(settings, io))
    app.tact_settings, app.io, app.committed = settings, io, {}
    app.committer = Committer(lambda offsets: app.consumer.commit_processed(offsets))  # type: ignore[attr-defined]
    transport = batching_transport(settings.topics.inputs, settings.fetch_wait_ms)
    app.transport = transport(app.conf.broker_consumer, app)
    table = app.Table(
        TABLE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        options=_rocksdb_options(settings),
    )
    store: PartitionStore = MemoryStore(io) if in_memory else TableStore(table, io)
    schemas = Schemas.load(ids=settings.schema_ids)
    cache = StateCache(settings.state_cache_customers)
    metrics.watch_state_cache(cache)
    app.processor = Processor(
        settings.topics,
        policy,
        schemas,
        store,
        io,
        metrics,
        failpoint=settings.failpoint,
        max_record_bytes=settings.max_record_bytes,
        cache=cache,
    )
    _wire_agent(app)
    _wire_release_timer(app, settings.release_interval_s)
    _wire_rebalance(app, metrics)
    return app


def _faust_settings(settings: Settings, io: RecordIO) -> dict[str, Any]:
    async def fence(tps: set[TP]) -> None:
        await io.fence((tp.topic, tp.partition) for tp in tps)

    manager = fenced_table_manager(fence) if settings.broker_kind == "tansu" else TableManager
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
        "web_enabled": False,
        "TableManager": manager,
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
        acks=False,  # Tact commits a run's offsets itself, once the run is durable
    )
    inputs.maxsize = QUEUED_FETCHES  # app.topic() drops its maxsize argument (Faust 0.15.3)

    @app.agent(inputs, name="tact.decide", concurrency=1)
    async def decide(fetches: faust.StreamT[Fetch]) -> None:
        async for fetch in fetches:
            batch = [fetch, *_queued_fetches(app, fetches)]
            try:
                progress = await app.processor.process([r for each in batch for r in each.runs])
            except ProcessorClosed:
                return
            except Exception as exc:
                # Skipping the fetch would lose it (later ones would commit past it): stop the
                # worker instead; its replacement decides it again from the committed offsets.
                log.exception("cannot make a fetch durable; stopping")
                await app.crash(exc)
                return
            await app.rewind(progress.rewind)
            app.commit_later(progress.done)

    app.decide_agent = decide


def _queued_fetches(app: TactApp, stream: faust.StreamT[Fetch]) -> list[Fetch]:
    """The fetches that arrived while the last batch was being made durable.

    Decided together, they cost one durable write (two produce round trips and a RocksDB
    batch) instead of one each: the busier the worker, the larger its batches. Like Faust's
    stream, this drops events fetched before a rebalance; their records are fetched again.
    """
    queue = cast(faust.ChannelT[Fetch], stream.channel).queue
    fetches: list[Fetch] = []
    records = 0
    while not queue.empty() and records < MAX_BATCH_RECORDS:
        event = queue.get_nowait()
        message = event.message
        if app.flow_control.is_active() and message.generation_id == app.consumer_generation_id:
            fetches.append(event.value)
            records += sum(len(run.records) for run in event.value.runs)
    return fetches


def _wire_release_timer(app: TactApp, interval: float) -> None:
    @app.timer(interval, name="tact.release")  # type: ignore[untyped-decorator]
    async def release_due() -> None:
        if app.rebalancing or not app.flow_control.is_active():
            return
        await app.processor.release_due()


def _wire_rebalance(app: TactApp, metrics: Metrics) -> None:
    inputs = set(app.tact_settings.topics.inputs)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **_: Any) -> None:
        await app.processor.forget({tp.partition for tp in revoked if tp.topic in inputs})
        await app.committer.drain()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[TP], **_: Any) -> None:
        partitions = {tp.partition for tp in assigned if tp.topic in inputs}
        app.processor.assign(partitions)
        metrics.assigned_partitions.set(len(partitions))
        log.info("this worker decides partitions %s", sorted(partitions))
