"""`tact bench`: Tact against the raw Kafka client, on the embedded broker, in one run.

1. Pre-load profiles, events and candidates for M customers into the input topics.
2. pipe:   a plain aiokafka consume -> produce loop moves the same records to another topic.
3. engine: a Tact worker process decides them all (policy, RocksDB state, changelog, decisions
           and outbound topics), timed from its first durable run to its last.
4. latency: candidates produced at half the engine's peak rate (or --latency-rate);
           produce time -> outbound visible. Then the same load through the plain loop
           (produce time -> forwarded record visible): the floor the broker sets.
5. core:   the pure policy core alone, in this process.
6. stages: the worker's own work per record (Avro decode, core, Avro encode, state encode), in
           this process: the ceiling one worker process could reach if Kafka and Faust were free.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FunctionType
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from app.broker import EmbeddedBroker, free_port
from app.client import Encoded, encode_input
from app.codecs.avro import MAX_RECORD_BYTES, Schemas
from app.codecs.records import decision_to_dict, iso, outbound_to_dict
from app.codecs.state import encode_state
from app.collector import collector_for_deciding
from app.config import Settings, TopicNames
from app.policy.engine import apply_record
from app.policy.model import CHANNELS, CustomerProfile, CustomerState
from app.policy.policy_file import load_policy
from app.simulate import parse_record
from app.stream.io import ensure_tact_topics
from app.stream.kafka_records import InputDecoder
from app.traffic import now_ms, random_profiles

PARTITIONS = 8
PIPE_TOPIC = "bench.pipe-latency"  # where the plain loop forwards the latency load


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


def traffic(customers: int, events: int, start_ms: int, seed: int = 1) -> list[dict[str, Any]]:
    """Profiles for every customer, then candidates (4 in 5) and events, spread over a minute."""
    rng = random.Random(seed)
    records = random_profiles(rng, customers, ["UTC"])
    for i in range(events):
        at = iso(start_ms - 60_000 + 60_000 * i // max(events, 1))
        customer = f"c{rng.randrange(customers)}"
        if rng.random() < 0.2:
            records.append(
                {
                    "kind": "event",
                    "event_id": f"e{i}",
                    "customer_id": customer,
                    "type": "email_opened",
                    "occurred_at": at,
                    "channel": "email",
                }
            )
        else:
            records.append(
                {
                    "kind": "candidate",
                    "message_id": f"m{i}",
                    "customer_id": customer,
                    "category": rng.choices(["service", "transactional", "promo"], [1, 1, 3])[0],
                    "audience": rng.choice(["personal", "mass"]),
                    "channels": rng.sample(CHANNELS, 3),
                    "urgency": "immediate",
                    "dedupe_key": None,
                    "created_at": at,
                    "template": "offer",
                    "payload": {"amount": str(rng.randrange(1000))},
                }
            )
    return records


class Bench:
    def __init__(
        self, customers: int, events: int, say: Any, latency_rate: float | None = None
    ) -> None:
        self.customers, self.events, self.say = customers, events, say
        self.latency_rate = latency_rate
        self.schemas = Schemas.load()
        self.work = Path(tempfile.mkdtemp(prefix="tact-bench-"))

    def run(self) -> Result:
        records = traffic(self.customers, self.events, now_ms())
        core = core_rate(records)
        compiled = core_is_compiled()
        self.say(f"core ({build_name(compiled)}): {core:,.0f} decisions/s in-process")
        topics = TopicNames.with_prefix("bench.")
        encoded = [encode_input(r, topics, self.schemas) for r in records]
        stages = stage_costs(encoded, topics, self.schemas)
        self.say(f"in-process ceiling: {stages.records_per_s:,.0f} records/s ({stages.summary()})")
        with EmbeddedBroker(log_path=self.work / "broker.log") as broker:
            asyncio.run(
                ensure_tact_topics(
                    broker.bootstrap, topics, PARTITIONS, extra=["bench.pipe", PIPE_TOPIC]
                )
            )
            asyncio.run(preload(broker.bootstrap, encoded))
            self.say(f"pre-loaded {len(encoded):,} records for {self.customers:,} customers")
            pipe = asyncio.run(
                pipe_rate(broker.bootstrap, list(topics.inputs), "bench.pipe", len(encoded))
            )
            self.say(f"pipe: {pipe:,.0f} records/s (aiokafka consume -> produce)")
            worker = self.start_worker(broker, topics)
            peak = PeakRss(worker.pid)
            try:
                engine = self.engine_rate(worker, len(encoded))
                self.say(f"engine: {engine:,.0f} records/s")
                load = self.latency_rate or engine / 2
                outbound = list(topics.outbound.values())
                schema = "tact.OutboundMessage"
                p50, p99 = self.measure_latency(broker, topics, load, outbound, schema)
                self.say(f"latency at {load:,.0f}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
                rss = rss_mb(worker.pid)
            finally:
                peak.stop()
                worker.terminate()
                worker.wait(timeout=60)
            pipe_p50, pipe_p99 = self.pipe_latency(broker, topics, load)
            self.say(f"pipe latency at {load:,.0f}/s: p50 {pipe_p50:.1f} ms, p99 {pipe_p99:.1f} ms")
        return Result(
            round(engine),
            round(pipe),
            round(engine / pipe, 3),
            round(p50, 2),
            round(p99, 2),
            round(rss, 1),
            self.customers,
            len(encoded),
            round(core),
            round(load),
            round(pipe_p50, 2),
            round(pipe_p99, 2),
            compiled,
            round(max(peak.mb, rss), 1),
            round(stages.records_per_s),
            asdict(stages),
        )

    def pipe_latency(
        self, broker: EmbeddedBroker, topics: TopicNames, load: float
    ) -> tuple[float, float]:
        """The latency load through the plain loop, in a process of its own as the worker is."""
        forwarder = subprocess.Popen(
            [sys.executable, "-m", "app.bench", broker.bootstrap, topics.candidates, PIPE_TOPIC],
            stdout=subprocess.PIPE,
        )
        try:
            assert forwarder.stdout is not None
            if forwarder.stdout.readline().strip() != b"ready":
                raise RuntimeError("the plain loop for the latency run did not start")
            return self.measure_latency(broker, topics, load, [PIPE_TOPIC], "tact.Candidate")
        finally:
            forwarder.terminate()
            forwarder.wait(timeout=60)

    def measure_latency(
        self,
        broker: EmbeddedBroker,
        topics: TopicNames,
        load: float,
        read_topics: list[str],
        read_schema: str,
    ) -> tuple[float, float]:
        """p50 and p99 of the latency load, read back as `read_schema` records."""
        run = latency(
            broker.bootstrap, topics, self.schemas, load, self.customers, read_topics, read_schema
        )
        return asyncio.run(run)

    def start_worker(self, broker: EmbeddedBroker, topics: TopicNames) -> subprocess.Popen[bytes]:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "TACT_BROKER": broker.url,
            "TACT_BROKER_KIND": "tansu",
            "TACT_TOPIC_PREFIX": "bench.",
            "TACT_APP_ID": "tact-bench",
            "TACT_PARTITIONS": str(PARTITIONS),
            "TACT_DATA_DIR": str(self.work / "data"),
            "TACT_METRICS_PORT": str(self.metrics_port),
            "TACT_METRICS_HOST": "127.0.0.1",
            "TACT_REBALANCE_TIMEOUT_S": "3",
            "TACT_RECOVERY_DELAY_S": "0.2",
            "TACT_LOG_LEVEL": os.environ.get("TACT_LOG_LEVEL", "warn"),
        }
        log = open(self.work / "worker.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def engine_rate(
        self, worker: subprocess.Popen[bytes], total: int, timeout_s: float = 600
    ) -> float:
        """Records made durable per second, from the worker owning its partitions to the last
        record durable (so table recovery and the group join of an empty worker count too).
        Polled 4 times a second: every scrape of /metrics costs the worker time."""
        ready_at: float | None = None
        decided, answered_at = 0.0, None
        started = time.monotonic()
        while time.monotonic() < started + timeout_s:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker stopped; see {self.work / 'worker.log'}")
            metrics = self.metrics()
            if metrics:
                decided, answered_at = metrics.get("tact_input_records_total", 0), time.monotonic()
            if ready_at is None and metrics.get("tact_assigned_partitions", 0) > 0:
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
            f"records decided, {answered}; see {self.work / 'worker.log'}"
        )

    def metrics(self) -> dict[str, float]:
        """Every sample of the worker's /metrics, summed over labels (empty if unreachable)."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return {}
        sums: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.split("{")[0].split(" ")[0], float(line.rsplit(" ", 1)[1])
                sums[name] = sums.get(name, 0.0) + value
        return sums


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss / 2**20)


class PeakRss:
    """The highest RSS of a process, sampled 4 times a second by a thread until stop()."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.mb = 0.0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            try:
                self.mb = max(self.mb, rss_mb(self.pid))
            except psutil.Error:
                return  # the process has ended
            if self._stopped.wait(0.25):
                return

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def core_rate(records: list[dict[str, Any]], seconds: float = 3.0) -> float:
    """Decisions per second of the pure core alone: in memory, default policy, no codecs."""
    policy = load_policy()
    inputs = [parse_record(r) for r in records]
    profiles = [i for i in inputs if isinstance(i, CustomerProfile)]
    work = [i for i in inputs if not isinstance(i, CustomerProfile)]
    clock = now_ms()
    decided, spent = 0, 0.0
    with collector_for_deciding():  # as the worker runs
        while spent < seconds:
            states = {p.customer_id: CustomerState(p.customer_id, p) for p in profiles}  # a new day
            started = time.perf_counter()
            for item in work:
                applied = apply_record(states.get(item.customer_id), item, clock, policy)
                if applied.state is not None:
                    states[item.customer_id] = applied.state
                decided += len(applied.decisions)
            spent += time.perf_counter() - started
    return decided / spent


@dataclass
class StageCosts:
    """CPU microseconds per input record of the worker's in-process stages (no Kafka, no Faust)."""

    decode_us: float  # Avro body -> the core's value
    core_us: float  # apply_record
    encode_us: float  # decisions and outbound messages -> Avro
    state_us: float  # each customer's final state encoded once: less than the worker writes

    def summary(self) -> str:
        return (
            f"decode {self.decode_us} + core {self.core_us} + encode {self.encode_us} "
            f"+ state {self.state_us} µs per record"
        )

    @property
    def records_per_s(self) -> float:
        """The most records one core could decide if Kafka and Faust cost nothing."""
        return 1e6 / (self.decode_us + self.core_us + self.encode_us + self.state_us)


def stage_costs(encoded: list[Encoded], topics: TopicNames, schemas: Schemas) -> StageCosts:
    """Time the worker's own work on the bench's records, a stage at a time, with the worker's
    codecs and core: the floor under what one worker process can cost per record."""
    decoder = InputDecoder(topics, schemas, MAX_RECORD_BYTES)
    decision_codec, outbound_codec = schemas["tact.Decision"], schemas["tact.OutboundMessage"]
    policy, clock = load_policy(), now_ms()
    with collector_for_deciding():
        started = time.perf_counter()
        inputs = []
        for record in encoded:
            inputs.append(decoder.decode(record.topic, record))
        decoded = time.perf_counter()
        states: dict[str, CustomerState | None] = {}
        outputs = []
        for item in inputs:
            applied = apply_record(states.get(item.customer_id), item, clock, policy)
            states[item.customer_id] = applied.state
            outputs.append(applied)
        decided = time.perf_counter()
        for applied in outputs:
            for decision in applied.decisions:
                decision_codec.encode(decision_to_dict(decision))
            for message in applied.outbound:
                outbound_codec.encode(outbound_to_dict(message))
        encoded_at = time.perf_counter()
        for state in states.values():
            if state is not None:
                encode_state(state)
        done = time.perf_counter()
    per_record = 1e6 / max(len(encoded), 1)
    return StageCosts(
        round((decoded - started) * per_record, 2),
        round((decided - decoded) * per_record, 2),
        round((encoded_at - decided) * per_record, 2),
        round((done - encoded_at) * per_record, 2),
    )


def core_is_compiled() -> bool:
    """Whether the install compiled the policy core (setup.py), or it runs interpreted."""
    return not isinstance(apply_record, FunctionType)  # compiled, it is a builtin


def build_name(compiled: bool) -> str:
    return "compiled" if compiled else "interpreted"


async def preload(bootstrap: str, encoded: list[Encoded]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [
            await producer.send(e.topic, e.value, key=e.key, timestamp_ms=e.timestamp_ms)
            for e in encoded
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def pipe_rate(bootstrap: str, sources: list[str], target: str, total: int) -> float:
    """The plain loop: consume, produce each record onward, commit; records/s."""
    consumer = AIOKafkaConsumer(
        *sources,
        bootstrap_servers=bootstrap,
        group_id="bench-pipe",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=512 * 1024)
    await consumer.start()
    await producer.start()
    try:
        moved, started = 0, None
        while moved < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            started = started or (time.perf_counter() if batch else None)
            moved += await forward(producer, target, batch)
            await consumer.commit()
        return moved / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await producer.stop()
        await consumer.stop()


async def forward(
    producer: AIOKafkaProducer, target: str, batch: dict[TopicPartition, list[Any]]
) -> int:
    """The plain loop's step: produce each fetched record onward and wait for the acks."""
    moved = 0
    for records in batch.values():
        for record in records:
            await producer.send(target, record.value, key=record.key)
            moved += 1
    await producer.flush()
    return moved


async def forward_forever(bootstrap: str, source: str, target: str) -> None:
    """The plain loop for the latency run: from the end of `source`, with the worker's fetch
    wait and no linger, as the worker runs; says "ready" once it is at the end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=Settings(broker_kind="tansu").fetch_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    consumer.assign([TopicPartition(source, p) for p in range(PARTITIONS)])
    await consumer.seek_to_end()
    print("ready", flush=True)
    while True:
        await forward(producer, target, await consumer.getmany(timeout_ms=1000, max_records=5000))


async def latency(
    bootstrap: str,
    topics: TopicNames,
    schemas: Schemas,
    rate: float,
    customers: int,
    read_topics: list[str],
    read_schema: str,
    seconds: float = 10.0,
) -> tuple[float, float]:
    """Produce service candidates at `rate`/s; time from produce to the records that carry
    their message_id (`read_schema` records) read back from `read_topics`."""
    consumer = AIOKafkaConsumer(
        *read_topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1)
    await consumer.start()
    await producer.start()
    await asyncio.sleep(2)  # let the consumer settle at the end of the topics
    sent_at: dict[str, float] = {}
    seen: list[float] = []

    async def read() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=50)).values():
                now = time.perf_counter()
                for record in records:
                    message_id = schemas[read_schema].decode(record.value)["message_id"]
                    if message_id in sent_at:
                        seen.append((now - sent_at[message_id]) * 1000)

    # Encoded before the clock starts: the load generator shares the machine with the worker and
    # the broker, so it should spend its CPU on sending, not on Avro.
    count = int(rate * seconds)
    records = [
        encode_input(latency_candidate(f"lat-{i}", f"c{i % customers}"), topics, schemas)
        for i in range(count)
    ]
    reader = asyncio.create_task(read())
    try:
        started = time.perf_counter()
        sent = 0
        while sent < count:
            due = min(count, int((time.perf_counter() - started) * rate) + 1)
            for i in range(sent, due):
                sent_at[f"lat-{i}"] = time.perf_counter()
                await producer.send(records[i].topic, records[i].value, key=records[i].key)
            sent = due
            await asyncio.sleep(0.001)
        await asyncio.sleep(5)
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()
    if not seen:
        raise RuntimeError(f"nothing arrived on {', '.join(read_topics)} during the latency run")
    seen.sort()
    return seen[len(seen) // 2], seen[min(len(seen) - 1, int(len(seen) * 0.99))]


def latency_candidate(message_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "kind": "candidate",
        "message_id": message_id,
        "customer_id": customer_id,
        "category": "service",
        "audience": "personal",
        "channels": list(CHANNELS),
        "urgency": "immediate",
        "created_at": iso(now_ms()),
        "template": "code",
    }


def result_json(result: Result) -> str:
    return json.dumps(asdict(result))


def print_table(result: Result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"tact bench: {result.events:,} records, {result.customers:,} customers")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("engine (worker, full policy, durable)", f"{result.engine_events_per_s:,.0f} records/s"),
        ("pipe (aiokafka consume -> produce)", f"{result.pipe_events_per_s:,.0f} records/s"),
        ("engine / pipe", f"{result.ratio:.2f}"),
        (f"latency p50 at {result.latency_load_per_s:,.0f}/s", f"{result.p50_ms:.1f} ms"),
        (f"latency p99 at {result.latency_load_per_s:,.0f}/s", f"{result.p99_ms:.1f} ms"),
        ("pipe latency p50 at the same load", f"{result.pipe_p50_ms:.1f} ms"),
        ("pipe latency p99 at the same load", f"{result.pipe_p99_ms:.1f} ms"),
        ("worker RSS after the run", f"{result.rss_mb:,.0f} MB"),
        ("worker RSS, highest over the run", f"{result.peak_rss_mb:,.0f} MB"),
        (
            f"pure core ({build_name(result.core_compiled)})",
            f"{result.core_decisions_per_s:,.0f} decisions/s",
        ),
        (
            "in-process ceiling, one core, Kafka and Faust free",
            f"{result.in_process_ceiling_per_s:,.0f} records/s",
        ),
        *(
            (f"  {stage.removesuffix('_us')}, per record", f"{us:.2f} µs")
            for stage, us in result.stage_us_per_record.items()
        ),
    ]
    for row in rows:
        table.add_row(*row)
    Console(stderr=True).print(table)


if __name__ == "__main__":  # the plain loop of the latency run: BOOTSTRAP SOURCE TARGET
    asyncio.run(forward_forever(*sys.argv[1:4]))
