"""`tact demo`: the embedded broker, a real worker process and a morning's worth of traffic."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from app.broker import EmbeddedBroker
from app.client import Publisher, encode_input, read_all
from app.codecs.avro import Schemas
from app.codecs.records import iso
from app.config import TopicNames
from app.policy.model import CHANNELS
from app.stream.io import ensure_tact_topics
from app.traffic import now_ms, random_profiles

PARTITIONS = 4
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London", "Australia/Sydney"]


def story_profiles() -> list[dict[str, Any]]:
    return [
        {
            "kind": "profile",
            "customer_id": "anna",
            "timezone": "Europe/Berlin",
            "consents": {"email": True, "sms": True, "push": True},
            "reachable": {"email": True, "sms": True, "push": False},
        },
        {
            "kind": "profile",
            "customer_id": "ben",
            "timezone": "America/New_York",
            "consents": {"email": True, "sms": True},
            "reachable": {"email": True, "sms": True},
        },
        {
            "kind": "profile",
            "customer_id": "chen",
            "timezone": "Asia/Tokyo",
            "consents": {"email": True},
            "reachable": {"email": True},
        },
    ]


def story(start: int) -> list[dict[str, Any]]:
    """A few moments worth explaining, then the engine is left to the crowd."""

    def candidate(message_id: str, customer: str, at: int, **fields: Any) -> dict[str, Any]:
        base = {
            "kind": "candidate",
            "message_id": message_id,
            "customer_id": customer,
            "category": "promo",
            "audience": "mass",
            "channels": ["push", "email"],
            "urgency": "normal",
            "created_at": iso(at),
            "template": message_id,
        }
        return {**base, **fields}

    return [
        {
            "kind": "event",
            "event_id": "anna-1",
            "customer_id": "anna",
            "type": "application_submitted",
            "occurred_at": iso(start - 120_000),
            "channel": None,
        },
        candidate(
            "anna-sms-confirmation",
            "anna",
            start,
            category="service",
            audience="personal",
            channels=["sms"],
            urgency="immediate",
        ),
        candidate(
            "anna-what-next",
            "anna",
            start + 1000,
            category="transactional",
            audience="personal",
            channels=["email"],
        ),
        candidate("anna-offer-1", "anna", start + 2000, dedupe_key="mortgage-offer"),
        candidate("anna-offer-1-retry", "anna", start + 3000, dedupe_key="mortgage-offer"),
        candidate("anna-offer-2", "anna", start + 4000),
        candidate("anna-offer-3", "anna", start + 5000),
        {
            "kind": "event",
            "event_id": "ben-1",
            "customer_id": "ben",
            "type": "unsubscribed",
            "occurred_at": iso(start + 5500),
            "channel": "email",
        },
        candidate("ben-newsletter", "ben", start + 6000, channels=["email"]),
        candidate(
            "ben-reminder", "ben", start + 6500, channels=["email", "sms"], urgency="immediate"
        ),
        candidate(
            "chen-statement", "chen", start + 7000, category="transactional", channels=["email"]
        ),
        candidate("ghost-offer", "ghost", start + 8000),
    ]


def crowd(rng: random.Random, customers: int, count: int, start: int) -> list[dict[str, Any]]:
    records = random_profiles(rng, customers, ZONES)
    for i in range(count):
        records.append(
            {
                "kind": "candidate",
                "message_id": f"crowd-{i}",
                "customer_id": f"c{rng.randrange(customers)}",
                "category": rng.choices(["service", "transactional", "promo"], [1, 1, 4])[0],
                "audience": rng.choice(["personal", "mass"]),
                "channels": rng.sample(CHANNELS, 2),
                "urgency": rng.choice(["immediate", "normal", "low"]),
                "created_at": iso(start + i),
                "template": "offer",
            }
        )
    return records


class Demo:
    def __init__(self, console: Console, customers: int, candidates: int) -> None:
        self.console = console
        self.customers = customers
        self.candidates = candidates
        self.topics = TopicNames.with_prefix("")
        self.schemas = Schemas.load()
        self.metrics_port = int(os.environ.get("TACT_METRICS_PORT", "9464"))
        self.work = Path(tempfile.mkdtemp(prefix="tact-demo-"))

    def run(self, keep_running: bool) -> None:
        with EmbeddedBroker(log_path=self.work / "broker.log") as broker:
            self.console.print(
                f"[bold]broker[/]  Tansu (Kafka protocol, in memory) on {broker.bootstrap}"
            )
            asyncio.run(ensure_tact_topics(broker.bootstrap, self.topics, PARTITIONS))
            worker = self.start_worker(broker)
            try:
                self.feed_and_report(broker, worker)
                if keep_running:
                    self.console.print("Worker and broker keep running; Ctrl-C stops them.")
                    worker.wait()
            except KeyboardInterrupt:
                pass
            finally:
                worker.terminate()
                worker.wait(timeout=30)

    def start_worker(self, broker: EmbeddedBroker) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "TACT_BROKER": broker.url,
            "TACT_BROKER_KIND": "tansu",
            "TACT_PARTITIONS": str(PARTITIONS),
            "TACT_DATA_DIR": str(self.work / "data"),
            "TACT_METRICS_PORT": str(self.metrics_port),
            "TACT_REBALANCE_TIMEOUT_S": "3",
            "TACT_RECOVERY_DELAY_S": "0.2",
            "TACT_LOG_LEVEL": "warn",
        }
        log = open(self.work / "worker.log", "wb")  # noqa: SIM115
        self.console.print(
            f"[bold]worker[/]  python -m app worker  (log: {self.work / 'worker.log'})"
        )
        self.console.print(f"[bold]metrics[/] http://127.0.0.1:{self.metrics_port}/metrics")
        return subprocess.Popen(
            [sys.executable, "-m", "app", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def feed_and_report(self, broker: EmbeddedBroker, worker: subprocess.Popen[bytes]) -> None:
        start = now_ms()
        rng = random.Random(1)
        crowd_records = crowd(rng, self.customers, self.candidates, start)
        profiles = story_profiles() + [r for r in crowd_records if r["kind"] == "profile"]
        self.publish(broker, profiles)
        self.wait_for(
            worker, "tact_input_records_total", len(profiles), "the worker to read the profiles"
        )
        self.publish(broker, story(start))
        self.publish(broker, [r for r in crowd_records if r["kind"] == "candidate"])
        asyncio.run(self.publish_corrupt(broker))
        expected = sum(1 for r in story(start) if r["kind"] == "candidate") + self.candidates
        self.wait_for(worker, "tact_decisions_total", expected, "the decisions")
        self.report(broker)

    def publish(self, broker: EmbeddedBroker, records: list[dict[str, Any]]) -> None:
        encoded = [encode_input(r, self.topics, self.schemas) for r in records]

        async def go() -> None:
            async with Publisher(broker.bootstrap) as publisher:
                await publisher.publish(encoded)

        asyncio.run(go())

    async def publish_corrupt(self, broker: EmbeddedBroker) -> None:
        async with Publisher(broker.bootstrap) as publisher:
            await publisher.publish_raw(self.topics.candidates, b"anna", b"not avro at all")

    def wait_for(self, worker: subprocess.Popen[bytes], metric: str, count: int, what: str) -> None:
        with self.console.status(f"waiting for {what}..."):
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if worker.poll() is not None:
                    raise RuntimeError(f"the worker stopped; see {self.work / 'worker.log'}")
                if self.metric(metric) >= count:
                    return
                time.sleep(0.3)
        raise TimeoutError(f"timed out waiting for {what}; see {self.work / 'worker.log'}")

    def metric(self, name: str) -> float:
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        return sum(
            float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)
        )

    def report(self, broker: EmbeddedBroker) -> None:
        t = self.topics
        records = asyncio.run(read_all(broker.bootstrap, [t.decisions, t.dead_letters], idle_s=1.0))
        decisions = [
            self.schemas["tact.Decision"].decode(r.value) for r in records if r.topic == t.decisions
        ]
        letters = [
            self.schemas["tact.DeadLetter"].decode(r.value)
            for r in records
            if r.topic == t.dead_letters
        ]
        table = Table(title="The story: every candidate gets one decision, with its reasons")
        for column in ("message", "customer", "outcome", "channel", "reasons"):
            table.add_column(column)
        for d in decisions:
            if not d["message_id"].startswith("crowd-"):
                reasons = ", ".join(d["reasons"])
                if d["release_at"]:
                    reasons += f" (until {iso(d['release_at'])[:16]}Z)"
                table.add_row(
                    d["message_id"], d["customer_id"], d["outcome"], d["channel"] or "", reasons
                )
        self.console.print(table)
        for letter in letters:
            self.console.print(
                f"[red]dead letter[/] {letter['source_topic']}@{letter['source_offset']}: "
                f"{letter['error']}"
            )
        crowd_outcomes = Counter(
            d["outcome"] for d in decisions if d["message_id"].startswith("crowd-")
        )
        summary = ", ".join(f"{n} {o}" for o, n in crowd_outcomes.most_common())
        self.console.print(
            f"[bold]crowd[/]   {self.candidates} candidates for {self.customers} customers: "
            f"{summary}"
        )
