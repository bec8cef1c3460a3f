"""Prometheus metrics, on a registry the caller owns (one per app; tests make their own)."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

BATCH_SIZES = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class Metrics:
    """Every metric the worker exports, in three groups: what flows, how long it takes, and
    what the worker holds."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        GCCollector(registry=self.registry)  # python_gc_*: how often the collector stops work
        ProcessCollector(registry=self.registry)  # process_*: CPU seconds, resident memory
        self._flow(self.registry)
        self._timing(self.registry)
        self._holding(self.registry)
        self._journeys(self.registry)
        self._feedback(self.registry)

    def _flow(self, r: CollectorRegistry) -> None:
        self.records_in = Counter(
            "tact_input_records",
            "Input records decided and made durable, by topic",
            ["topic"],
            registry=r,
        )
        self.decisions = Counter(
            "tact_decisions",
            "Decision records emitted, by outcome, first reason, channel and category",
            ["outcome", "reason", "channel", "category"],
            registry=r,
        )
        self.outbound = Counter(
            "tact_outbound_messages", "Messages handed to channel gateways", ["channel"], registry=r
        )
        self.dead_letters = Counter(
            "tact_dead_letters",
            "Input records sent to the dead-letter topic, by topic and kind (undecodable, "
            "wrong_key, invalid, failed, poison, state_limit)",
            ["topic", "kind"],
            registry=r,
        )
        self.released = Counter(
            "tact_released_candidates", "Held candidates decided when their time came", registry=r
        )
        self.recovered = Counter(
            "tact_recovered_decisions",
            "Outputs found on their topics after a crash, and not published again, by kind",
            ["kind"],
            registry=r,
        )
        self.changelog_restored = Counter(
            "tact_changelog_restored_records",
            "Changelog records written to RocksDB to restore a partition (copy=active: a lost "
            "disk, a partition taken over) or to keep its standby copy (copy=standby)",
            ["copy"],
            registry=r,
        )
        self.duplicates_ignored = Counter(
            "tact_redelivered_candidates",
            "Candidates whose message_id was already decided (redelivery or producer retry)",
            registry=r,
        )

    def _timing(self, r: CollectorRegistry) -> None:
        self.decide_seconds = Histogram(
            "tact_decide_seconds",
            "Time to decide one fetched run of records, policy core and encoding included",
            registry=r,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.flush_seconds = Histogram(
            "tact_flush_seconds",
            "Time to make a run durable: outputs, then state changelog, then local state",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.batch_records = Histogram(
            "tact_batch_records", "Records per processed run", registry=r, buckets=BATCH_SIZES
        )
        self.decision_lag = BulkHistogram(
            "tact_decision_lag_seconds",
            "Wall-clock time from a decision's moment (a candidate's created_at, a held one's "
            "release time) to the decision being durable",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )

    def _journeys(self, r: CollectorRegistry) -> None:
        self.journey_transitions = Counter(
            "tact_journey_transitions",
            "Journey instance transitions (entered, step_<outcome>, step_skipped, exited, "
            "converted, timed_out, refused), by journey and step",
            ["journey", "step", "transition"],
            registry=r,
        )
        self.journey_goal_value = Counter(
            "tact_journey_goal_value",
            "The sum of the goal events' value attribute (what the journey brought), by journey",
            ["journey"],
            registry=r,
        )

    def _feedback(self, r: CollectorRegistry) -> None:
        self.contact_cost = Counter(
            "tact_contact_cost",
            "What the sends cost by the policy's channel prices, by channel, category and journey",
            ["channel", "category", "journey"],
            registry=r,
        )
        self.channel_switches = Counter(
            "tact_channel_switches",
            "Customers who turned from one channel to another within the switch window",
            ["from_channel", "to_channel"],
            registry=r,
        )
        self.feedback_score = Histogram(
            "tact_feedback_score",
            "NPS (0-10) and CSAT (1-5) scores, by the channel and journey of the last contact",
            ["kind", "channel", "journey"],
            registry=r,
            buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
        )

    def _holding(self, r: CollectorRegistry) -> None:
        self.deferred_backlog = Gauge(
            "tact_deferred_backlog",
            "Candidates held (quiet hours, arbitration) right now",
            ["partition"],
            registry=r,
        )
        self.log_behind_state = Gauge(
            "tact_input_log_behind_state",
            "1 while an input partition's log ends before the position this worker's state has "
            "read it to (the broker started over): the partition is not decided",
            ["topic", "partition"],
            registry=r,
        )
        self.journey_instances = Gauge(
            "tact_journey_instances",
            "Journey instances live (entered, not yet ended), by journey and partition",
            ["journey", "partition"],
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "tact_assigned_partitions", "Input partitions this worker owns", registry=r
        )

    def watch_input_lag(self, lag: Callable[[], Iterable[tuple[str, int, int, float]]]) -> None:
        """Export how far behind each owned input partition is, computed at each scrape."""
        self.registry.register(_LagCollector(lag))

    def count_restored(self, copy: str, records: int) -> None:
        self.changelog_restored.labels(copy).inc(records)

    def watch_state_cache(self, cache: CacheFigures) -> None:
        """Export the state cache's figures, read at each scrape (nothing on the hot path)."""
        self.registry.register(_StateCacheCollector(cache))

    def serve(self, host: str, port: int, probes: Probes | None = None) -> None:
        """Expose /metrics over HTTP in a background thread (port 0: do nothing), and the
        probes /health/live and /health/ready (200 or 503 with the reason)."""
        if not port:
            return
        metrics = make_wsgi_app(self.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            probe = (probes or {}).get(environ.get("PATH_INFO", ""))
            if probe is None:
                return metrics(environ, start_response)  # type: ignore[no-any-return]
            healthy, why = probe()
            status = "200 OK" if healthy else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{why}\n".encode()]

        server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not worth a log line each."""


Probes = Mapping[str, Callable[[], tuple[bool, str]]]  # path -> (healthy, why)


class CacheFigures(Protocol):
    hits: int
    misses: int

    def __len__(self) -> int: ...


class BulkHistogram(Collector):
    """A histogram without labels that takes a batch of values at a time: the worker observes
    every decision's lag, and prometheus_client's Histogram takes a lock per value (1.3 µs)."""

    def __init__(
        self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry
    ) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = (*sorted(float(b) for b in buckets), math.inf)
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        counts, bounds = self.counts, self.bounds
        for value in values:
            counts[bisect_left(bounds, value)] += 1
            self.sum += value

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip(self.bounds, list(self.counts), strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == math.inf else str(bound), cumulative))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self.sum
        )


class _LagCollector(Collector):
    def __init__(self, lag: Callable[[], Iterable[tuple[str, int, int, float]]]) -> None:
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        records = GaugeMetricFamily(
            "tact_input_lag_records",
            "Input records behind the log end, per owned partition (0: caught up)",
            labels=["topic", "partition"],
        )
        seconds = GaugeMetricFamily(
            "tact_input_lag_seconds",
            "While behind: how old the latest input decided is, by its record time (0: caught up)",
            labels=["topic", "partition"],
        )
        for topic, partition, behind, late in self.lag():
            records.add_metric([topic, str(partition)], behind)
            seconds.add_metric([topic, str(partition)], late)
        yield records
        yield seconds


class _StateCacheCollector(Collector):
    def __init__(self, cache: CacheFigures) -> None:
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        reads = CounterMetricFamily(
            "tact_state_reads",
            "Customer states looked up, by where they came from (cache, or RocksDB and msgpack)",
            labels=["source"],
        )
        reads.add_metric(["cache"], self.cache.hits)
        reads.add_metric(["store"], self.cache.misses)
        yield reads
        yield GaugeMetricFamily(
            "tact_state_cache_customers",
            "Customers whose decoded state is in the worker's cache",
            value=len(self.cache),
        )
