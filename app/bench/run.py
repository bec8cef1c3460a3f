"""One run of `tact bench` (see app/bench/__init__.py for its phases)."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.bench.history import costs_by_history
from app.bench.journeys import (
    JourneyLoad,
    journey_policy,
    journey_profiles,
    journey_triggers,
    read_lags,
)
from app.bench.latency import (
    Latency,
    Load,
    campaign_candidate,
    latency,
    latency_candidate,
    percentile,
)
from app.bench.memory import PeakRss, rss_mb
from app.bench.pipe import PARTITIONS, pipe_rate, preload
from app.bench.report import Result
from app.bench.scale import STANDBY_REPLICAS, measure_scale
from app.bench.shell import shell_costs
from app.bench.stages import build_name, core_is_compiled, core_rate, stage_costs
from app.bench.writes import Writes
from app.broker import EmbeddedBroker
from app.client import Encoded, encode_input, read_all
from app.clock import now_ms
from app.codecs.avro import Schemas
from app.config import TopicNames
from app.stream.io import ensure_tact_topics
from app.traffic import Mix, activity, random_profiles
from app.waiting import wait_until
from app.worker_process import WorkerProcess, summed

TOPIC_PREFIX = "bench."  # of every topic the bench's worker reads and writes
PIPE_TOPIC = "bench.pipe-latency"  # where the plain loop forwards the latency load
BENCH_MIX = Mix(  # every candidate is sent or refused at once: what the engine's rate measures
    urgencies=("immediate",),
    category_weights=(1, 1, 3),
    channels=(3, 3),
    dedupe_share=0.0,
    priorities=(None,),
    event_types=("email_opened",),
)
HOT = "hot"  # the customer of the burst
RESTORED = "tact_changelog_restored_records_total"
RESTORE_POLL = 0.1  # s between looks at a restoring worker (each costs it a scrape)
URGENT_RATE = 500.0  # codes and service notices per second on the urgent topic
SHELL_CODES = 20_000  # latency codes timed through the processor in-process (shell.py)


def traffic(customers: int, events: int, start_ms: int, seed: int = 1) -> list[dict[str, Any]]:
    """Profiles for every customer, then candidates (4 in 5) and events over the last minute."""
    rng = random.Random(seed)
    profiles = random_profiles(rng, customers, ["UTC"])
    return profiles + activity(rng, customers, events, start_ms - 60_000, 60_000, mix=BENCH_MIX)


class Bench:
    def __init__(
        self,
        customers: int,
        events: int,
        say: Any,
        latency_rate: float | None = None,
        burst: int = 100_000,
        journeys: JourneyLoad | None = None,
        campaign: int = 100_000,
        load_seconds: float = 10.0,
        workers: int = 1,
    ) -> None:
        self.customers, self.events, self.say = customers, events, say
        self.latency_rate = latency_rate
        self.burst = burst
        self.campaign = campaign
        self.load_seconds = load_seconds  # of each latency run
        self.workers = workers  # more than 1: the scale-out phase (scale.py)
        self.journeys = journeys
        self.schemas = Schemas.load()
        self.topics = TopicNames.with_prefix(TOPIC_PREFIX)
        self.work = Path(tempfile.mkdtemp(prefix="tact-bench-"))

    def run(self) -> Result:
        """Every measure in one run. The work directory (RocksDB, logs) is removed after it, and
        kept after a failure, with its path said."""
        try:
            result = self._measure()
        except BaseException:
            self.say(f"the bench's data and logs are kept in {self.work}")
            raise
        shutil.rmtree(self.work, ignore_errors=True)
        return result

    def _measure(self) -> Result:
        records = traffic(self.customers, self.events, now_ms())
        core, compiled, history = core_rate(records), core_is_compiled(), costs_by_history()
        self.say(f"core ({build_name(compiled)}): {core:,.0f} decisions/s in-process")
        self.say(f"decide by history (µs): {history.decide_us}; its write: {history.write_us}")
        encoded = [encode_input(r, self.topics, self.schemas) for r in records]
        stages = stage_costs(encoded, self.topics, self.schemas)
        self.say(f"in-process ceiling: {stages.records_per_s:,.0f} records/s ({stages.summary()})")
        codes = min(SHELL_CODES, len(encoded))
        shell = shell_costs(encoded, self.customers, TOPIC_PREFIX, self.schemas, PARTITIONS, codes)
        self.say(
            f"the worker's processor in-process: {shell.records_per_s:,.0f} records/s, "
            f"{shell.code_us:.1f} µs per latency code"
        )
        with EmbeddedBroker(log_path=self.work / "broker.log") as broker:
            measured = self._on_broker(broker, encoded)
            if self.journeys and self.journeys.customers:
                measured |= self.measure_journeys(broker, self.journeys)
            if self.workers > 1:
                measured |= self.measure_scale_out(broker, encoded)
        return Result(
            **measured,
            customers=self.customers,
            events=len(encoded),
            core_decisions_per_s=round(core),
            core_compiled=compiled,
            in_process_ceiling_per_s=round(stages.records_per_s),
            stage_us_per_record=stages.as_dict(),
            shell_in_process_per_s=shell.records_per_s,
            shell_in_process_code_us=shell.code_us,
            decide_us_by_history=history.decide_us,
            write_us_by_history=history.write_us,
        )

    def _on_broker(self, broker: EmbeddedBroker, encoded: list[Encoded]) -> dict[str, Any]:
        extra = ["bench.pipe", PIPE_TOPIC]
        asyncio.run(ensure_tact_topics(broker.bootstrap, self.topics, PARTITIONS, extra=extra))
        asyncio.run(preload(broker.bootstrap, encoded))
        self.say(f"pre-loaded {len(encoded):,} records for {self.customers:,} customers")
        pipe = asyncio.run(
            pipe_rate(broker.bootstrap, list(self.topics.inputs), "bench.pipe", len(encoded))
        )
        self.say(f"pipe: {pipe:,.0f} records/s (aiokafka consume -> produce)")
        worker = self.start_worker(broker)
        peak = PeakRss(worker.pid)
        try:
            measured = self._with_worker(broker, worker, len(encoded))
        finally:
            peak.stop()
            worker.stop(timeout=60)
        disk = disk_bytes(worker.data_dir)
        self.say(f"the worker's data directory: {disk / 2**20:,.1f} MB")
        measured |= {
            "state_disk_mb": round(disk / 2**20, 1),
            "state_disk_bytes_per_customer": round(disk / max(self.customers, 1)),
        }
        measured |= self.measure_restore(broker)
        plain = self.pipe_latency(broker, measured["latency_load_per_s"])
        pipe_p50, pipe_p99, pipe_busy = plain.p50_ms, plain.p99_ms, plain.busy
        self.say(
            f"pipe latency: p50 {pipe_p50:.1f} ms, p99 {pipe_p99:.1f} ms (its CPU {pipe_busy:.0%})"
        )
        return {
            **measured,
            "pipe_events_per_s": round(pipe),
            "ratio": round(measured["engine_events_per_s"] / pipe, 3),
            "pipe_p50_ms": round(pipe_p50, 2),
            "pipe_p99_ms": round(pipe_p99, 2),
            "pipe_latency_busy": round(pipe_busy, 2),
            "peak_rss_mb": round(max(peak.mb, measured["rss_mb"]), 1),
        }

    def _with_worker(
        self, broker: EmbeddedBroker, worker: WorkerProcess, total: int
    ) -> dict[str, Any]:
        engine = self.engine_rate(worker, total)
        self.say(f"engine: {engine:,.0f} records/s")
        rate = self.latency_rate or engine / 2
        outbound = list(self.topics.outbound.values())
        before = worker.samples()
        run = self.measure_latency(
            broker, rate, outbound, "tact.OutboundMessage", busy_pid=worker.pid
        )
        writes = Writes.between(before, worker.samples())
        p50, p99, busy = run.p50_ms, run.p99_ms, run.busy
        self.say(
            f"latency at {rate:,.0f}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms (worker CPU {busy:.0%}; "
            f"{writes.records_per_write:,.0f} records per durable write, per record "
            f"{writes.decide_us:.0f} µs deciding, {writes.write_us:.0f} µs making it durable)"
        )
        burst = self.measure_burst(broker, worker, rate, outbound) if self.burst else {}
        lane = self.measure_urgent_lane(broker, worker, outbound) if self.campaign else {}
        return {
            "engine_events_per_s": round(engine),
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "latency_load_per_s": round(rate),
            "latency_worker_busy": round(busy, 2),
            "latency_records_per_write": writes.records_per_write,
            "latency_decide_us_per_record": writes.decide_us,
            "latency_write_us_per_record": writes.write_us,
            "rss_mb": round(rss_mb(worker.pid), 1),
            **burst,
            **lane,
        }

    def measure_burst(
        self, broker: EmbeddedBroker, worker: WorkerProcess, rate: float, outbound: list[str]
    ) -> dict[str, Any]:
        """The latency load again, with `burst` candidates for one customer sent at once."""
        hot = {
            "kind": "profile",
            "customer_id": HOT,
            "timezone": "UTC",
            "consents": {"sms": True},
            "reachable": {"sms": True},
        }
        asyncio.run(preload(broker.bootstrap, [encode_input(hot, self.topics, self.schemas)]))
        burst = [
            encode_input({**_service(f"burst-{i}"), "customer_id": HOT}, self.topics, self.schemas)
            for i in range(self.burst)
        ]
        before = worker.metric("tact_decisions_total")
        started = time.monotonic()
        meanwhile = self.measure_latency(
            broker, rate, outbound, "tact.OutboundMessage", burst, "during-burst"
        )
        p50, p99 = meanwhile.p50_ms, meanwhile.p99_ms
        expected = before + self.burst + int(rate * self.load_seconds)
        self.wait_for(worker, "tact_decisions_total", expected, 600)
        decided_s = time.monotonic() - started
        others = f"others p50 {p50:.0f} ms, p99 {p99:.0f} ms"
        self.say(f"burst of {self.burst:,}: decided in {decided_s:.1f} s; {others}")
        return {
            "burst_candidates": self.burst,
            "burst_decided_s": round(decided_s, 2),
            "burst_others_p50_ms": round(p50, 2),
            "burst_others_p99_ms": round(p99, 2),
        }

    def measure_urgent_lane(
        self, broker: EmbeddedBroker, worker: WorkerProcess, outbound: list[str]
    ) -> dict[str, Any]:
        """Codes on the urgent topic at URGENT_RATE, alone, and then while the worker decides
        a campaign of `campaign` promo candidates (every customer in turn) published at once
        just before."""
        alone = self.measure_latency(
            broker, URGENT_RATE, outbound, "tact.OutboundMessage", prefix="code", lane="urgent"
        )
        campaign = [
            encode_input(
                campaign_candidate(f"sale-{i}", f"c{i % self.customers}"), self.topics, self.schemas
            )
            for i in range(self.campaign)
        ]
        before = worker.metric("tact_decisions_total")
        started = time.monotonic()
        # Published before the codes start, from this process: its producer then does not
        # compete with the codes' sender and reader for this process's CPU.
        asyncio.run(preload(broker.bootstrap, campaign))
        during = self.measure_latency(
            broker,
            URGENT_RATE,
            outbound,
            "tact.OutboundMessage",
            prefix="code-during",
            lane="urgent",
        )
        expected = before + self.campaign + int(URGENT_RATE * self.load_seconds)
        self.wait_for(worker, "tact_decisions_total", expected, 600)
        decided_s = time.monotonic() - started
        self.say(
            f"urgent lane at {URGENT_RATE:,.0f}/s: p50 {alone.p50_ms:.0f} ms, "
            f"p99 {alone.p99_ms:.0f} ms (acked p99 {alone.ack_p99_ms:.0f} ms); during a campaign "
            f"of {self.campaign:,} (decided in {decided_s:.1f} s): p50 {during.p50_ms:.0f} ms, "
            f"p99 {during.p99_ms:.0f} ms (acked p99 {during.ack_p99_ms:.0f} ms)"
        )
        return {
            "urgent_load_per_s": URGENT_RATE,
            "urgent_p50_ms": round(alone.p50_ms, 2),
            "urgent_p99_ms": round(alone.p99_ms, 2),
            "campaign_candidates": self.campaign,
            "campaign_decided_s": round(decided_s, 2),
            "campaign_urgent_p50_ms": round(during.p50_ms, 2),
            "campaign_urgent_p99_ms": round(during.p99_ms, 2),
            "urgent_ack_p50_ms": round(alone.ack_p50_ms, 2),
            "urgent_ack_p99_ms": round(alone.ack_p99_ms, 2),
            "campaign_urgent_ack_p50_ms": round(during.ack_p50_ms, 2),
            "campaign_urgent_ack_p99_ms": round(during.ack_p99_ms, 2),
        }

    def measure_journeys(self, broker: EmbeddedBroker, load: JourneyLoad) -> dict[str, Any]:
        """A worker of its own, on topics of their own, with the journey policy (journeys.py)."""
        name = "bench-journey"
        topics = TopicNames.with_prefix(f"{name}.")
        asyncio.run(ensure_tact_topics(broker.bootstrap, topics, PARTITIONS))
        policy = self.work / "journeys.toml"
        policy.write_text(journey_policy(load))
        worker = self.start_worker(broker, name, policy)
        peak = PeakRss(worker.pid)
        try:
            self._send(broker, topics, journey_profiles(load))
            self.wait_for(worker, "tact_input_records_total", load.customers, 600)
            self._send(broker, topics, journey_triggers(load, now_ms()))
            self.say(
                f"journeys: {load.steps:,} steps for {load.customers:,} customers, due "
                f"at {load.due_per_s:,.0f}/s over the next {load.seconds:,.0f} s"
            )
            decided = "tact_decisions_total"
            self.wait_for(worker, decided, load.steps, load.seconds + 600)
            rss = rss_mb(worker.pid)
        finally:
            peak.stop()
            worker.stop(timeout=60)
        lags = read_lags(
            broker.bootstrap, topics.decisions, PARTITIONS, self.schemas["tact.Decision"].decode
        )
        if len(lags) != load.steps:
            raise RuntimeError(f"{len(lags):,} journey step decisions, expected {load.steps:,}")
        p50, p99 = percentile(lags, 0.5), percentile(lags, 0.99)
        self.say(
            f"journey release lag: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {lags[-1]:.0f} "
            f"ms; worker RSS {rss:,.0f} MB, highest {peak.mb:,.0f} MB"
        )
        return {
            "journey_customers": load.customers,
            "journey_steps": load.steps,
            "journey_due_per_s": round(load.due_per_s),
            "journey_release_lag_p50_ms": round(p50, 1),
            "journey_release_lag_p99_ms": round(p99, 1),
            "journey_release_lag_max_ms": round(lags[-1], 1),
            "journey_rss_mb": round(rss, 1),
            "journey_peak_rss_mb": round(max(peak.mb, rss), 1),
        }

    def measure_scale_out(self, broker: EmbeddedBroker, encoded: list[Encoded]) -> dict[str, Any]:
        """The engine's records again, on topics of their own, for a group of workers."""
        name = "bench-scale"
        topics = TopicNames.with_prefix(f"{name}.")
        asyncio.run(ensure_tact_topics(broker.bootstrap, topics, PARTITIONS))
        to = dict(zip(self.topics.inputs, topics.inputs, strict=True))
        asyncio.run(preload(broker.bootstrap, [replace(e, topic=to[e.topic]) for e in encoded]))
        standby = {
            "TACT_STANDBY_REPLICAS": str(STANDBY_REPLICAS),
            # A member that takes longer than this to rejoin is dropped and rejoins, which starts
            # the next rebalance: with three workers and a broker on two cores the embedded
            # default of 3 s kept such a group rebalancing for minutes.
            "TACT_REBALANCE_TIMEOUT_S": "20",
        }
        measured = measure_scale(
            lambda member: self.start_worker(broker, name, member=member, env=standby),
            self.workers,
            PARTITIONS,
            len(encoded),
        )
        self.say(
            f"{self.workers} workers: {measured['workers_events_per_s']:,} records/s together "
            f"({', '.join(f'{r:,}' for r in measured['worker_events_per_s'])}); a rebalance "
            f"when one joins {measured['rebalance_join_s']:.1f} s, leaves "
            f"{measured['rebalance_leave_s']:.1f} s; kill -9 of one, taken over with standby "
            f"replicas in {measured['standby_takeover_s']:.1f} s"
        )
        return measured

    def _send(
        self, broker: EmbeddedBroker, topics: TopicNames, records: list[dict[str, Any]]
    ) -> None:
        encoded = [encode_input(r, topics, self.schemas) for r in records]
        asyncio.run(preload(broker.bootstrap, encoded))

    def pipe_latency(self, broker: EmbeddedBroker, load: float) -> Latency:
        """The latency load through the plain loop, in a process of its own as the worker is."""
        command = [
            sys.executable,
            "-m",
            "app.bench.pipe",
            broker.bootstrap,
            self.topics.candidates,
            PIPE_TOPIC,
        ]
        forwarder = subprocess.Popen(command, stdout=subprocess.PIPE)
        try:
            assert forwarder.stdout is not None
            if forwarder.stdout.readline().strip() != b"ready":
                raise RuntimeError("the plain loop for the latency run did not start")
            return self.measure_latency(
                broker, load, [PIPE_TOPIC], "tact.Candidate", busy_pid=forwarder.pid
            )
        finally:
            forwarder.terminate()
            forwarder.wait(timeout=60)

    def measure_latency(
        self,
        broker: EmbeddedBroker,
        rate: float,
        read_topics: list[str],
        read_schema: str,
        burst: list[Encoded] | None = None,
        prefix: str = "lat",
        lane: str = "",
        busy_pid: int = 0,
    ) -> Latency:
        load = Load(
            broker.bootstrap,
            self.topics,
            self.schemas,
            rate,
            self.customers,
            read_topics,
            read_schema,
            burst=burst or [],
            prefix=prefix,
            lane=lane,
            seconds=self.load_seconds,
            busy_pid=busy_pid,
        )
        return asyncio.run(latency(load))

    def measure_restore(self, broker: EmbeddedBroker) -> dict[str, Any]:
        """A lost disk: a worker on the same group and topics with an empty data directory,
        from its start until it is ready (every partition rebuilt from the changelog)."""
        changelog = "tact-bench-customers-changelog"  # the app id tact-bench, table customers
        records = len(asyncio.run(read_all(broker.bootstrap, [changelog], idle_s=1.0)))
        started = time.monotonic()
        worker = self.start_worker(broker, data="restored")
        reading: list[float] = []  # when the first restored changelog record was seen

        def ready() -> bool:
            if not reading and worker.metric(RESTORED, copy="active") > 0:
                reading.append(time.monotonic())
            return worker.alive and worker.probe("ready")[0] == 200

        try:
            what = f"the restored worker to be ready (log: {worker.log_path})"
            wait_until(ready, 600, what, RESTORE_POLL)
            done = time.monotonic()
        finally:
            worker.stop(timeout=60)
        seconds = done - started
        first_restored = reading[0] if reading else done
        read = max(done - first_restored, RESTORE_POLL)  # each end is seen within one poll
        self.say(
            f"restore after a lost disk: {records:,} changelog records, ready in {seconds:.1f} s,"
            f" read in {read:.1f} s"
        )
        return {
            "restore_changelog_records": records,
            "restore_ready_s": round(seconds, 2),
            "restore_records_per_s": round(records / seconds),
            "restore_read_s": round(read, 2),
            "restore_read_records_per_s": round(records / read),
        }

    def start_worker(
        self,
        broker: EmbeddedBroker,
        name: str = "bench",
        policy: Path | None = None,
        data: str = "",
        member: int = 0,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        """A worker on the topics `name.*`, with an app id and data dir of its own; members
        of one group (`member`) each have their own instance id and data dir."""
        settings = {
            "TACT_BROKER": broker.url,
            "TACT_TOPIC_PREFIX": f"{name}.",
            "TACT_APP_ID": f"tact-{name}",
            # One member id per name: a worker started again on an empty disk (the restore
            # measurement) takes its partitions back at once, as a restarted pod does.
            "TACT_INSTANCE_ID": f"tact-{name}-{member}",
            "TACT_PARTITIONS": str(PARTITIONS),
            "TACT_LOG_LEVEL": "warn",
            "TACT_POLICY_PATH": str(policy or ""),
            **(env or {}),
        }
        work, suffix = self.work, f"-{member}" if member else ""
        data_dir = work / f"{name}-{data or 'data'}{suffix}"
        log_path = work / f"{name}-{data or 'worker'}{suffix}.log"
        return WorkerProcess(settings, data_dir, log_path).start()

    def engine_rate(self, worker: WorkerProcess, total: int, timeout_s: float = 600) -> float:
        """Records made durable per second, from the worker owning its partitions to the last
        record durable (so table recovery and the group join of an empty worker count too).
        Polled 4 times a second: every scrape of /metrics costs the worker time."""
        ready_at: float | None = None
        decided, answered_at = 0.0, None
        started = time.monotonic()
        while time.monotonic() < started + timeout_s:
            if not worker.alive:
                raise RuntimeError(f"the worker stopped; see {worker.log_path}")
            samples = worker.samples()  # one scrape: each costs the worker time
            if samples:
                answered_at = time.monotonic()
                decided = summed(samples, "tact_input_records_total")
            if ready_at is None and summed(samples, "tact_assigned_partitions") > 0:
                ready_at = time.monotonic()
            if ready_at is not None and decided >= total:
                return total / (time.monotonic() - ready_at)
            time.sleep(0.25)
        answered = (
            f"its /metrics last answered {time.monotonic() - answered_at:.0f} s ago"
            if answered_at is not None
            else "its /metrics never answered"
        )
        raise TimeoutError(
            f"the engine did not finish within {timeout_s:.0f} s: {decided:,.0f} of {total:,} "
            f"records decided, {answered}; see {worker.log_path}"
        )

    def wait_for(self, worker: WorkerProcess, metric: str, value: float, timeout_s: float) -> None:
        def reached() -> bool:
            if not worker.alive:
                raise RuntimeError(f"the worker stopped; see {worker.log_path}")
            return worker.metric(metric) >= value

        wait_until(reached, timeout_s, f"{metric} >= {value:,.0f}", 0.25)


def disk_bytes(directory: Path) -> int:
    """What a directory holds on disk, every file in it (RocksDB's SSTs, WAL, manifests)."""
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def _service(message_id: str) -> dict[str, Any]:
    return {**latency_candidate(message_id, HOT), "channels": ["sms"]}
