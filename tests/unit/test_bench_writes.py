"""`tact bench` reads the worker's durable writes over a run from two scrapes of its metrics."""

from prometheus_client import generate_latest

from app.bench.writes import Writes
from app.metrics import Metrics
from app.worker_process import samples_in


def scrape(metrics: Metrics) -> list:
    """What the bench reads from the worker's /metrics (WorkerProcess.samples)."""
    return samples_in(generate_latest(metrics.registry).decode())


def written(metrics: Metrics, records: int, decide_s: float, flush_s: float) -> None:
    """What the worker's observer counts for one durable write."""
    metrics.decide_seconds.observe(decide_s)
    metrics.flush_seconds.observe(flush_s)
    metrics.batch_records.observe(records)


def test_only_the_writes_between_the_two_scrapes_count_per_record():
    metrics = Metrics()
    written(metrics, 5_000, 0.5, 2.0)  # the engine phase, before the run
    before = scrape(metrics)
    written(metrics, 1_000, 0.05, 0.10)
    written(metrics, 3_000, 0.15, 0.30)
    writes = Writes.between(before, scrape(metrics))
    assert writes == Writes(records_per_write=2_000.0, decide_us=50.0, write_us=100.0)


def test_no_write_between_the_scrapes_or_no_answer_reads_as_zeros():
    metrics = Metrics()
    written(metrics, 5_000, 0.5, 2.0)
    assert Writes.between(scrape(metrics), scrape(metrics)) == Writes(0.0, 0.0, 0.0)
    assert Writes.between([], []) == Writes(0.0, 0.0, 0.0)
    before = scrape(metrics)
    written(metrics, 1_000, 0.05, 0.10)
    assert Writes.between([], scrape(metrics)) == Writes(0.0, 0.0, 0.0)  # not the run before
    assert Writes.between(before, []) == Writes(0.0, 0.0, 0.0)
