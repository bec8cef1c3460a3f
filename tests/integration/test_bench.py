"""`tact bench` end to end, at a small size: every figure is measured, none is made up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from app.bench.memory import PeakRss, cpu_seconds, rss_mb
from app.bench.run import Bench
from app.bench.stages import core_is_compiled
from app.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

KEYS = {
    "engine_events_per_s",
    "pipe_events_per_s",
    "ratio",
    "p50_ms",
    "p99_ms",
    "rss_mb",
    "customers",
    "events",
    "core_decisions_per_s",
    "latency_load_per_s",
    "pipe_p50_ms",
    "pipe_p99_ms",
    "core_compiled",
    "peak_rss_mb",
    "in_process_ceiling_per_s",
    "stage_us_per_record",
    "decide_us_by_history",
    "write_us_by_history",
    "burst_candidates",
    "burst_decided_s",
    "burst_others_p50_ms",
    "burst_others_p99_ms",
    "urgent_load_per_s",
    "urgent_p50_ms",
    "urgent_p99_ms",
    "campaign_candidates",
    "campaign_decided_s",
    "campaign_urgent_p50_ms",
    "campaign_urgent_p99_ms",
    "urgent_ack_p50_ms",
    "urgent_ack_p99_ms",
    "campaign_urgent_ack_p50_ms",
    "campaign_urgent_ack_p99_ms",
    "journey_customers",
    "journey_steps",
    "journey_due_per_s",
    "journey_release_lag_p50_ms",
    "journey_release_lag_p99_ms",
    "journey_release_lag_max_ms",
    "journey_rss_mb",
    "journey_peak_rss_mb",
    "state_disk_mb",
    "state_disk_bytes_per_customer",
    "workers",
    "workers_events_per_s",
    "worker_events_per_s",
    "rebalance_join_s",
    "rebalance_leave_s",
    "standby_replicas",
    "standby_takeover_s",
    "restore_changelog_records",
    "restore_ready_s",
    "restore_records_per_s",
    "restore_read_s",
    "restore_read_records_per_s",
    "latency_worker_busy",
    "latency_records_per_write",
    "latency_decide_us_per_record",
    "latency_write_us_per_record",
    "pipe_latency_busy",
    "shell_in_process_per_s",
    "shell_in_process_code_us",
}
LAGS = {"journey_release_lag_p50_ms", "journey_release_lag_p99_ms", "journey_release_lag_max_ms"}


def test_bench_measures_engine_pipe_latency_and_core_in_one_run(tmp_path):
    command = ["-m", "app", "bench", "--customers", "200", "--events", "3000"]
    command += ["--latency-rate", "200", "--burst", "2000", "--campaign", "2000"]
    command += ["--load-seconds", "2", "--workers", "2"]
    command += ["--journey-customers", "300", "--journey-rate", "1000"]
    done = subprocess.run(
        [sys.executable, *command, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not list(tmp_path.glob("tact-bench-*")), "its RocksDB and logs are left behind"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == KEYS
    assert result["customers"] == 200
    assert result["events"] == 200 + 3000  # every profile, then the candidates and events
    assert result["latency_load_per_s"] == 200
    assert result["core_compiled"] is core_is_compiled()  # says which core ran
    stages = result.pop("stage_us_per_record")
    assert set(stages) == {"decode_us", "core_us", "encode_us", "state_us"}
    assert all(us > 0 for us in stages.values()), stages
    each = result.pop("worker_events_per_s")
    assert len(each) == result["workers"] == 2 and sum(each) > 0, each  # one may join late
    for key in ("decide_us_by_history", "write_us_by_history"):
        history = result.pop(key)
        assert set(history) == {"0", "1000", "100000"} and all(us > 0 for us in history.values())
    assert result["burst_candidates"] == 2000
    positive = KEYS - {
        "customers",
        "events",
        "latency_load_per_s",
        "core_compiled",
        "stage_us_per_record",
        "decide_us_by_history",
        "write_us_by_history",
        "worker_events_per_s",
        *LAGS,
    }
    assert all(result[key] > 0 for key in positive), result
    assert result["journey_steps"] == 300 * 10  # every step's decision record was read back
    p50, p99 = result["journey_release_lag_p50_ms"], result["journey_release_lag_p99_ms"]
    assert 0 <= p50 <= p99 <= result["journey_release_lag_max_ms"], result
    assert result["journey_peak_rss_mb"] >= result["journey_rss_mb"]
    assert result["p50_ms"] <= result["p99_ms"]
    assert result["burst_others_p50_ms"] <= result["burst_others_p99_ms"]
    assert result["campaign_candidates"] == 2000
    assert result["urgent_p50_ms"] <= result["urgent_p99_ms"]
    assert result["campaign_urgent_p50_ms"] <= result["campaign_urgent_p99_ms"]
    assert result["urgent_ack_p50_ms"] <= result["urgent_ack_p99_ms"]
    assert result["campaign_urgent_ack_p50_ms"] <= result["campaign_urgent_ack_p99_ms"]
    assert result["peak_rss_mb"] >= result["rss_mb"]
    assert result["pipe_p50_ms"] <= result["pipe_p99_ms"]
    assert result["latency_worker_busy"] < 2.5 and result["pipe_latency_busy"] < 2.5  # 2 cores
    assert "pipe latency p99 at the same load" in done.stderr
    assert result["restore_changelog_records"] >= 200  # every customer's state, at least
    assert 0 < result["restore_read_s"] <= result["restore_ready_s"]


def test_cpu_seconds_count_what_a_process_spent_on_cpu_not_its_wall_time():
    spin_then_sleep = (
        "import time\n"
        "end = time.process_time() + 1\n"
        "while time.process_time() < end: pass\n"
        "print('spun', flush=True)\n"
        "time.sleep(30)"
    )
    process = subprocess.Popen([sys.executable, "-c", spin_then_sleep], stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stdout.readline() == b"spun\n"
        time.sleep(1)  # asleep now: its CPU time stays where the spin left it
        spent = cpu_seconds(process.pid)
    finally:
        process.kill()
        process.wait()
    assert 1.0 <= spent < 1.8, spent
    assert cpu_seconds(0) == 0.0


def test_the_peak_rss_is_the_highest_sample_not_the_last():
    """A worker that grows and shrinks again: the peak keeps what it reached in between."""
    grow_then_shrink = 'import time; x = b"x" * 300 * 2**20; time.sleep(1.5); del x; time.sleep(30)'
    process = subprocess.Popen([sys.executable, "-c", grow_then_shrink])
    try:
        peak = PeakRss(process.pid)
        time.sleep(2.5)
        now = rss_mb(process.pid)
        peak.stop()
    finally:
        process.kill()
        process.wait()
    assert peak.mb >= 300 > now


def test_a_worker_that_does_not_finish_is_reported_with_what_it_decided():
    """The bench gives up with what it last saw, so a slow or silent worker can be told apart."""
    bench = Bench(customers=1, events=1, say=print)
    silent = WorkerProcess({}, bench.work / "data", bench.work / "worker.log")
    silent.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:  # a process that serves no /metrics on its port
        with pytest.raises(TimeoutError, match=r"0 of 10 records decided, its /metrics never"):
            bench.engine_rate(silent, total=10, timeout_s=1)
    finally:
        silent.stop()
