"""The worker's consumer changes aiokafka's fetcher only from the consumer thread.

The fetcher's fetched records are a dict the consumer thread loops over; a seek deletes from it.
Run from the worker's main thread, a seek raced that loop: KeyError, and the worker stopped
(found by repeated kill -9 restarts, which seek back after finding unread records).
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from faust.types import TP

from app.config import Settings
from app.stream.app import build_app

pytestmark = pytest.mark.integration


def test_a_seek_is_made_by_the_consumer_thread(harness, tmp_path):
    env = harness.env
    settings = Settings(
        broker=env["TACT_BROKER"],
        broker_kind="tansu",
        app_id=env["TACT_APP_ID"],
        topic_prefix=env["TACT_TOPIC_PREFIX"],
        partitions=int(env["TACT_PARTITIONS"]),
        data_dir=tmp_path,
    )
    tp = TP(harness.topics.candidates, 0)
    harness.publish_raw([(tp.topic, b"k", b"v")] * 5)
    seeking_threads: list[int] = []

    async def seek_back() -> int:
        app = build_app(settings)
        thread = app.consumer._thread
        await thread.start()
        try:
            client = thread._consumer
            await thread.call_thread(client.assign, [tp])  # aiokafka's state: its thread's
            fetcher = client._fetcher
            seek_to = fetcher.seek_to

            def seek_to_noting_thread(*args):
                seeking_threads.append(threading.get_ident())
                seek_to(*args)

            fetcher.seek_to = seek_to_noting_thread
            await app.consumer.seek(tp, 3)
            return await app.consumer.position(tp)
        finally:
            await thread.stop()

    main_thread = threading.get_ident()
    assert asyncio.run(seek_back()) == 3
    assert seeking_threads and main_thread not in seeking_threads
