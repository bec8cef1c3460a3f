"""Every private Faust, mode and aiokafka attribute Tact relies on, with why no public API serves.

Nothing else in Tact touches a name that starts with an underscore in those libraries. An upgrade
that removes one fails tests/unit/test_faust_private.py, which checks REQUIRED by name.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import rocksdict
from aiokafka.consumer.consumer import AIOKafkaConsumer
from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaDriverConsumer
from faust.types import TP
from mode.utils.queues import FlowControlQueue

# (owner, attribute): what Tact uses. Methods Tact overrides are listed too: a rename would make
# the override silently dead.
REQUIRED: list[tuple[Any, str]] = [
    (RocksDBStore, "_db_for_partition"),
    (Consumer, "_read_offset"),
    (Consumer, "_commit_offsets"),
    (Consumer, "_committed_offset"),
    (Consumer, "_wait_next_records"),
    (AIOKafkaDriverConsumer, "_seek"),
    (AIOKafkaDriverConsumer, "_thread"),
    (AIOKafkaConsumer, "_subscription"),
    (AIOKafkaConsumer, "_fetch_max_wait_ms"),
    (AIOKafkaConsumer, "_client"),
    (AIOKafkaConsumerThread, "_create_worker_consumer"),
    (AIOKafkaConsumerThread, "_consumer"),
    (Recovery, "_build_highwaters"),
    (TableManager, "_recovery"),
    (TableManager, "_update_channels"),
    (TableManager, "on_start"),
    (FlowControlQueue, "in_pressure_high_state"),
]


def rocksdb_of(table: Any, partition: int) -> rocksdict.Rdict:
    """A partition's RocksDB. Faust's Table offers no handle on it, and Tact writes a whole run
    as one WriteBatch, which the table's per-key __setitem__ cannot."""
    db: rocksdict.Rdict = table.data._db_for_partition(partition)
    return db


def position_in_place(consumer: Any, tp: TP) -> int | None:
    """The aiokafka consumer's position, read from its subscription state. Faust's public
    `position()` asks the consumer thread, a cross-thread round trip, several per fetch."""
    thread = getattr(consumer, "_thread", None)
    client = getattr(thread, "_consumer", None)
    subscription = client._subscription if client is not None else None
    if subscription is None:
        return None
    # Read while the consumer thread may be changing it: no subscription or assignment any
    # more (a rebalance) reads as no position.
    assignment = getattr(subscription.subscription, "assignment", None)
    state = assignment.state_value(tp) if assignment is not None else None
    return int(state.position) if state is not None and state.has_valid_position else None


def committed_in_place(consumer: Any, tp: TP) -> int:
    """The group's committed offset as Faust last sought to or committed it (0: none). The
    public `committed()` is a round trip to the broker."""
    return int(consumer._committed_offset.get(tp) or 0)


def forget_read_offset(consumer: Any, tp: TP) -> None:
    """Faust drops a message whose offset is below the last one read from its partition (it
    assumes one message per record); Tact's one message carries a whole fetch of many
    partitions, and orders and deduplicates the records itself."""
    consumer._read_offset[tp] = None


async def seek_in_consumer_thread(consumer: Any, tp: TP, offset: int) -> None:
    """aiokafka's seek, run by the consumer thread (which owns the fetcher's state). Faust's
    thread object runs its `seek` in whichever thread calls it; `call_thread` is how Faust's
    own calls (position, seek_wait) reach that thread."""
    thread = consumer._thread
    if thread._consumer is None:  # not started: nothing to race, and no thread to run it
        thread.seek(tp, offset)  # raises ConsumerNotStarted, as Faust's seek does
        return
    await thread.call_thread(thread.seek, tp, offset)


async def start_table_manager(manager: TableManager) -> None:
    """TableManager.on_start without its one-second sleep; the rest of it is `_update_channels`
    (each table's changelog channel, the changelog partitions paused), then recovery."""
    if not manager.should_stop:
        await manager._update_channels()
        await manager.recovery.start()


def commit_offsets(consumer: Any, offsets: dict[TP, int]) -> Awaitable[bool]:
    """Commit exactly these offsets. Faust's public commit() commits what its own acks say,
    and Tact's input topics are not acked message by message (acks=False)."""
    result: Awaitable[bool] = consumer._commit_offsets(offsets)
    return result


def set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Faust builds its aiokafka consumer with a fixed fetch_max_wait_ms of 1,500 ms."""
    consumer._fetch_max_wait_ms = wait_ms


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """aiokafka has no public call to refresh metadata for a topic it is not subscribed to."""
    await consumer._client.force_metadata_update()


def queue_of(stream: Any) -> Any:
    """The agent's input queue, to take the fetches already waiting without awaiting each."""
    return stream.channel.queue
