"""After any restart every input partition moves again, quickly, while input keeps arriving.

"Eventually correct" is not enough for a contact engine: an urgent code must not wait because a
pod restarted. After each restart (graceful or kill -9, with and without its RocksDB) every input
partition must be consumed to where its log ended when the worker came back, within
LIVENESS_BOUND_S of the worker process starting.
"""

from __future__ import annotations

import random
import shutil
import time

import pytest

from app.traffic import now_ms
from tests.integration.scenarios import (
    Feeder,
    assert_running,
    wait_until_deciding,
    worker_without_quiet_hours,
)
from tests.traffic import activity

pytestmark = pytest.mark.integration

# The goal the hardening issue sets.
LIVENESS_BOUND_S = 15.0
RESTARTS = [("kill", False), ("term", False), ("kill", True), ("term", True)]


def lagging(harness, ends):
    """Input partitions whose committed offset is still below `ends`: (tp, committed, end)."""
    committed = harness.committed_offsets()
    return [
        (tp, committed.get(tp, 0), end)
        for tp, end in sorted(ends.items())
        if committed.get(tp, 0) < end
    ]


def time_until(condition, limit, every=0.25):
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    return None


def test_every_partition_is_consumed_to_its_end_soon_after_each_restart(harness, tmp_path):
    rng = random.Random(16)
    worker, _, _ = worker_without_quiet_hours(harness, tmp_path, rng, 500)
    traffic = activity(rng, 500, 200 * 90, now_ms(), 90_000, prefix="l")
    feeder = Feeder(harness, traffic, per_second=200)  # 200 records/s until the restarts are done
    feeder.start()
    candidates = harness.topics.candidates
    report = []
    for how, wipe in RESTARTS:
        wait_until_deciding(worker, harness)
        time.sleep(rng.uniform(1, 3))
        assert_running(worker)
        worker.kill() if how == "kill" else worker.stop()
        if wipe:
            shutil.rmtree(worker.data_dir, ignore_errors=True)
        started = time.monotonic()
        worker.start()
        time.sleep(2)  # what arrives while it starts: the dead worker cannot have read it
        ends = {tp: end for tp, end in harness.ends.items() if tp[0] in harness.topics.inputs}
        first = time_until(
            lambda: worker.metric("tact_input_records_total", topic=candidates) > 0, 60
        )
        time_until(lambda ends=ends: not lagging(harness, ends), 60)
        caught_up = time.monotonic() - started
        report.append((how, wipe, round(first or -1, 1), round(caught_up, 1)))
        assert caught_up <= LIVENESS_BOUND_S, (
            f"after {how} (data dir {'lost' if wipe else 'kept'}): partitions behind "
            f"{lagging(harness, ends)} after {LIVENESS_BOUND_S} s; so far {report}"
        )
    feeder.stop()  # the restarts are done; what it published must all be decided
    assert feeder.error is None, feeder.error
    harness.wait_until_all_committed(timeout=120)
    print("restart: (how, data dir lost, s to first decision, s to every partition's end)")
    for line in report:
        print(" ", line)


def test_a_fetch_lost_at_the_tail_of_a_partition_is_read_again(harness, tmp_path):
    """A fetch dropped on its way to the agent with nothing published after it: no later record
    reveals the gap, only the consumer's position does (app/stream/undelivered.py)."""
    rng = random.Random(17)
    env = {"TACT_FAILPOINT": "drop_fetch:lost-tail"}
    worker, _, _ = worker_without_quiet_hours(harness, tmp_path, rng, 50, **env)
    harness.publish(activity(rng, 50, 20, now_ms(), 1_000, prefix="lost-tail-"))
    harness.wait_until_all_committed(timeout=30)
    log = worker.log_text()
    assert "failpoint drop_fetch:lost-tail: a fetched run is lost" in log
    assert "never applied; reading again" in log
    worker.stop()
