"""What `tact bench` found: the result, as a table for people and as JSON for tools.

The JSON keys are public (others compare runs by them): add keys, never rename or drop one.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from app.bench.stages import build_name


@dataclass
class Result:
    engine_events_per_s: float
    pipe_events_per_s: float
    ratio: float
    p50_ms: float
    p99_ms: float
    rss_mb: float
    customers: int
    events: int
    core_decisions_per_s: float
    latency_load_per_s: float
    pipe_p50_ms: float
    pipe_p99_ms: float
    core_compiled: bool
    peak_rss_mb: float  # the worker's highest RSS: 4 samples a second over its whole run
    in_process_ceiling_per_s: float  # see StageCosts.records_per_s
    stage_us_per_record: dict[str, float]  # the StageCosts
    # The worker's processor in this process, the broker and RocksDB in memory (shell.py): the
    # bench's records per second, and microseconds per latency code.
    shell_in_process_per_s: float = 0.0
    shell_in_process_code_us: float = 0.0
    # One more decision for a customer with this many messages in the window (history.py):
    decide_us_by_history: dict[str, float] = field(default_factory=dict)
    write_us_by_history: dict[str, float] = field(default_factory=dict)  # that decision's state
    # CPU time over wall time during each latency run (latency.py): the worker's, and the plain
    # loop's. Near 1, that process could not keep up with the load.
    latency_worker_busy: float = 0.0
    pipe_latency_busy: float = 0.0
    # The worker's durable writes over its latency run, from its /metrics (writes.py): input
    # records per write, and per record the time deciding and the time making it durable.
    latency_records_per_write: float = 0.0
    latency_decide_us_per_record: float = 0.0
    latency_write_us_per_record: float = 0.0
    burst_candidates: int = 0  # for one customer, at once, during the latency load
    burst_decided_s: float = 0.0  # from the burst's first record to every decision durable
    burst_others_p50_ms: float = 0.0  # the other customers' latency meanwhile
    burst_others_p99_ms: float = 0.0
    # The urgent lane: codes on the urgent topic, alone and during a campaign published at once
    # on the candidates topic (one promo candidate per customer and round).
    urgent_load_per_s: float = 0.0
    urgent_p50_ms: float = 0.0
    urgent_p99_ms: float = 0.0
    campaign_candidates: int = 0
    campaign_decided_s: float = 0.0  # from the campaign's first record to every decision durable
    campaign_urgent_p50_ms: float = 0.0  # the codes' latency meanwhile
    campaign_urgent_p99_ms: float = 0.0
    # The broker's part of it: from sending a code to the broker acknowledging it, alone and
    # during the campaign (what the worker cannot shorten).
    urgent_ack_p50_ms: float = 0.0
    urgent_ack_p99_ms: float = 0.0
    campaign_urgent_ack_p50_ms: float = 0.0
    campaign_urgent_ack_p99_ms: float = 0.0
    # Scale-out (scale.py, --workers N): the group's rate and each worker's, rebalance times.
    workers: int = 1
    workers_events_per_s: float = 0.0
    worker_events_per_s: list[float] = field(default_factory=list)
    rebalance_join_s: float = 0.0  # one more worker started -> the group settled
    rebalance_leave_s: float = 0.0  # that worker stopped (SIGTERM) -> the group settled
    standby_replicas: int = 0
    standby_takeover_s: float = 0.0  # one worker killed (kill -9) -> the others own it all
    # The journey load (journeys.py): steps released late by the wall clock, and memory.
    journey_customers: int = 0
    journey_steps: int = 0
    journey_due_per_s: float = 0.0
    journey_release_lag_p50_ms: float = 0.0
    journey_release_lag_p99_ms: float = 0.0
    journey_release_lag_max_ms: float = 0.0
    journey_rss_mb: float = 0.0
    journey_peak_rss_mb: float = 0.0
    # The engine worker's data directory after its run (RocksDB of every partition): all
    # customers' states plus what RocksDB keeps beside them, before any compaction is forced.
    state_disk_mb: float = 0.0
    state_disk_bytes_per_customer: float = 0.0
    # A lost disk: a worker with an empty data directory rebuilds the state from the changelog.
    restore_changelog_records: int = 0
    restore_ready_s: float = 0.0  # from its start (process, group join, restore) to ready
    restore_records_per_s: float = 0.0  # the records over that time: a floor on the rate
    # from the first changelog record restored (seen within 0.1 s) to ready: the reading itself
    restore_read_s: float = 0.0
    restore_read_records_per_s: float = 0.0


def result_json(result: Result) -> str:
    return json.dumps(asdict(result))


def print_table(result: Result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tact bench: {result.events:,} records, {result.customers:,} customers")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in _rows(result):
        table.add_row(*row)
    Console(stderr=True).print(table)


def _rows(r: Result) -> list[tuple[str, str]]:
    return (
        _worker_rows(r)
        + _in_process_rows(r)
        + _burst_rows(r)
        + _lane_rows(r)
        + _journey_rows(r)
        + _scale_rows(r)
    )


def _worker_rows(r: Result) -> list[tuple[str, str]]:
    load = f"{r.latency_load_per_s:,.0f}/s"
    return [
        ("engine (worker, full policy, durable)", f"{r.engine_events_per_s:,.0f} records/s"),
        ("pipe (aiokafka consume -> produce)", f"{r.pipe_events_per_s:,.0f} records/s"),
        ("engine / pipe", f"{r.ratio:.2f}"),
        (f"latency p50 at {load}", f"{r.p50_ms:.1f} ms"),
        (f"latency p99 at {load}", f"{r.p99_ms:.1f} ms"),
        ("  the worker's CPU meanwhile", f"{r.latency_worker_busy:.0%} of a core"),
        ("  its durable writes meanwhile", f"{r.latency_records_per_write:,.0f} records each"),
        ("  per record: deciding", f"{r.latency_decide_us_per_record:.1f} µs"),
        ("  per record: making it durable", f"{r.latency_write_us_per_record:.1f} µs"),
        ("pipe latency p50 at the same load", f"{r.pipe_p50_ms:.1f} ms"),
        ("pipe latency p99 at the same load", f"{r.pipe_p99_ms:.1f} ms"),
        ("  the plain loop's CPU meanwhile", f"{r.pipe_latency_busy:.0%} of a core"),
        ("worker RSS after the run", f"{r.rss_mb:,.0f} MB"),
        ("worker RSS, highest over the run", f"{r.peak_rss_mb:,.0f} MB"),
        (
            "its data directory (RocksDB), per customer",
            f"{r.state_disk_mb:,.1f} MB, {r.state_disk_bytes_per_customer:,.0f} bytes",
        ),
        (
            f"lost disk: {r.restore_changelog_records:,} changelog records, ready in",
            f"{r.restore_ready_s:.1f} s ({r.restore_records_per_s:,.0f} records/s)",
        ),
        (
            "  the changelog itself read in",
            f"{r.restore_read_s:.1f} s ({r.restore_read_records_per_s:,.0f} records/s)",
        ),
    ]


def _in_process_rows(r: Result) -> list[tuple[str, str]]:
    rows = [
        (
            f"pure core ({build_name(r.core_compiled)})",
            f"{r.core_decisions_per_s:,.0f} decisions/s",
        ),
        (
            "in-process ceiling, one core, Kafka and Faust free",
            f"{r.in_process_ceiling_per_s:,.0f} records/s",
        ),
    ]
    rows += [
        (f"  {s.removesuffix('_us')}, per record", f"{us:.2f} µs")
        for s, us in r.stage_us_per_record.items()
    ]
    rows += [
        (
            "the worker's processor in-process, broker and RocksDB in memory",
            f"{r.shell_in_process_per_s:,.0f} records/s",
        ),
        (
            "  engine / this (the rest: Kafka, Faust, the process)",
            f"{_share(r.engine_events_per_s, r.shell_in_process_per_s)}",
        ),
        (
            "  this / the ceiling (the rest: each batch made durable)",
            f"{_share(r.shell_in_process_per_s, r.in_process_ceiling_per_s)}",
        ),
        ("  a latency code, decided and written", f"{r.shell_in_process_code_us:.1f} µs"),
    ]
    rows += [
        (f"decide, customer with {int(n):,} messages in the window", f"{us:.2f} µs")
        for n, us in r.decide_us_by_history.items()
    ]
    rows += [
        (f"  its state's bytes, {int(n):,} messages in the window", f"{us:.2f} µs")
        for n, us in r.write_us_by_history.items()
    ]
    return rows


def _share(part: float, whole: float) -> str:
    return f"{part / whole:.2f}" if whole else "-"


def _burst_rows(r: Result) -> list[tuple[str, str]]:
    if not r.burst_candidates:
        return []
    load = f"{r.latency_load_per_s:,.0f}/s"
    return [
        (
            f"burst of {r.burst_candidates:,} for one customer, all decided in",
            f"{r.burst_decided_s:.1f} s",
        ),
        (
            f"others' latency p50 / p99 during the burst, at {load}",
            f"{r.burst_others_p50_ms:.0f} / {r.burst_others_p99_ms:.0f} ms",
        ),
    ]


def _lane_rows(r: Result) -> list[tuple[str, str]]:
    if not r.campaign_candidates:
        return []
    load = f"{r.urgent_load_per_s:,.0f}/s"
    return [
        (
            f"urgent lane: codes at {load}, p50 / p99",
            f"{r.urgent_p50_ms:.0f} / {r.urgent_p99_ms:.0f} ms",
        ),
        (
            f"  the same during a campaign of {r.campaign_candidates:,} (all decided in "
            f"{r.campaign_decided_s:.1f} s)",
            f"{r.campaign_urgent_p50_ms:.0f} / {r.campaign_urgent_p99_ms:.0f} ms",
        ),
        (
            "  the broker acknowledging the codes, alone / during the campaign, p50 / p99",
            f"{r.urgent_ack_p50_ms:.0f} / {r.urgent_ack_p99_ms:.0f} ms; "
            f"{r.campaign_urgent_ack_p50_ms:.0f} / {r.campaign_urgent_ack_p99_ms:.0f} ms",
        ),
    ]


def _journey_rows(r: Result) -> list[tuple[str, str]]:
    if not r.journey_steps:
        return []
    load = f"{r.journey_steps:,} steps, {r.journey_customers:,} customers"
    lag = (
        f"{r.journey_release_lag_p50_ms:,.0f} / {r.journey_release_lag_p99_ms:,.0f} / "
        f"{r.journey_release_lag_max_ms:,.0f} ms"
    )
    return [
        (f"journeys: {load}, due at {r.journey_due_per_s:,.0f}/s", ""),
        ("  step released after its due time, p50 / p99 / max", lag),
        (
            "  worker RSS after / highest",
            f"{r.journey_rss_mb:,.0f} / {r.journey_peak_rss_mb:,.0f} MB",
        ),
    ]


def _scale_rows(r: Result) -> list[tuple[str, str]]:
    if r.workers < 2:
        return []
    each = ", ".join(f"{rate:,.0f}" for rate in r.worker_events_per_s)
    return [
        (f"{r.workers} workers in one group, together", f"{r.workers_events_per_s:,.0f} records/s"),
        ("  each worker", f"{each} records/s"),
        (
            "  rebalance: one joins / one leaves",
            f"{r.rebalance_join_s:.1f} / {r.rebalance_leave_s:.1f} s",
        ),
        (
            f"  kill -9 of one, taken over ({r.standby_replicas} standby replica)",
            f"{r.standby_takeover_s:.1f} s",
        ),
    ]
