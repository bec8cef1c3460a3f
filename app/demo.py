"""`tact demo`: the embedded broker, a real worker process and a morning's worth of traffic."""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
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
from app.stream.io import ensure_tact_topics
from app.traffic import Mix, activity, now_ms, random_profiles
from app.waiting import wait_until
from app.worker_process import WorkerProcess

PARTITIONS = 4
# The shipped policy with the mission's journeys (the default policy plus [[journeys]]).
POLICY = Path(__file__).resolve().parents[1] / "deploy" / "policies" / "journeys.toml"
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


def _candidate(message_id: str, customer: str, **fields: Any) -> dict[str, Any]:
    base = {
        "kind": "candidate",
        "message_id": message_id,
        "customer_id": customer,
        "category": "promo",
        "audience": "mass",
        "channels": ["push", "email"],
        "urgency": "normal",
        "template": message_id,
    }
    return {**base, **fields}


def _event(
    event_id: str, customer: str, kind: str, channel: str | None, **attributes: str
) -> dict[str, Any]:
    return {
        "kind": "event",
        "event_id": event_id,
        "customer_id": customer,
        "type": kind,
        "channel": channel,
        "attributes": attributes,
    }


def _loan(event_id: str, customer: str, kind: str, application: str) -> dict[str, Any]:
    return _event(event_id, customer, kind, None, application_id=application)


# A few moments worth explaining, each at its time (ms from the start), before the crowd.
STORY: list[tuple[int, dict[str, Any]]] = [
    # The loan journey: SMS confirmation at once, "what happens next" by email 2 h later, the
    # manager's call the next day at 10:00 in the customer's zone.
    (-120_000, _loan("anna-1", "anna", "application_submitted", "L-1001")),
    # ben withdraws: his instance ends at once, the email due 2 h later is never sent.
    (1000, _loan("ben-2", "ben", "application_submitted", "L-2002")),
    (5200, _loan("ben-3", "ben", "application_withdrawn", "L-2002")),
    (2000, _candidate("anna-offer-1", "anna", dedupe_key="mortgage-offer")),
    (3000, _candidate("anna-offer-1-retry", "anna", dedupe_key="mortgage-offer")),
    (4000, _candidate("anna-offer-2", "anna")),
    (5000, _candidate("anna-offer-3", "anna")),
    (5500, _event("ben-1", "ben", "unsubscribed", "email")),
    (6000, _candidate("ben-newsletter", "ben", channels=["email"])),
    (6500, _candidate("ben-reminder", "ben", channels=["email", "sms"], urgency="immediate")),
    (7000, _candidate("chen-statement", "chen", category="transactional", channels=["email"])),
    (8000, _candidate("ghost-offer", "ghost")),
]


def story(start: int) -> list[dict[str, Any]]:
    """The story's records, timed from `start`."""
    return [
        {**record, "occurred_at" if record["kind"] == "event" else "created_at": iso(start + at)}
        for at, record in STORY
    ]


CROWD_MIX = Mix(event_share=0.0, channels=(2, 2), dedupe_share=0.0, priorities=(None,))


def crowd(rng: random.Random, customers: int, count: int, start: int) -> list[dict[str, Any]]:
    """Customers c0..c<n-1> and `count` candidates for them (crowd-m0, crowd-m1...)."""
    candidates = activity(rng, customers, count, start, count, prefix="crowd-", mix=CROWD_MIX)
    return random_profiles(rng, customers, ZONES) + candidates


class Demo:
    def __init__(self, console: Console, customers: int, candidates: int) -> None:
        self.console = console
        self.customers = customers
        self.candidates = candidates
        self.topics = TopicNames.with_prefix("")
        self.schemas = Schemas.load()
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
                    while worker.alive:
                        time.sleep(1)
            except KeyboardInterrupt:
                pass
            finally:
                worker.stop()

    def start_worker(self, broker: EmbeddedBroker) -> WorkerProcess:
        env = {
            "TACT_BROKER": broker.url,
            "TACT_PARTITIONS": str(PARTITIONS),
            "TACT_LOG_LEVEL": "warn",
            "TACT_POLICY_PATH": str(POLICY),
        }
        worker = WorkerProcess(env, self.work / "data", self.work / "worker.log")
        if "TACT_METRICS_PORT" in os.environ:
            worker.metrics_port = int(os.environ["TACT_METRICS_PORT"])
        self.console.print(f"[bold]worker[/]  python -m app worker  (log: {worker.log_path})")
        self.console.print(f"[bold]metrics[/] http://127.0.0.1:{worker.metrics_port}/metrics")
        return worker.start()

    def feed_and_report(self, broker: EmbeddedBroker, worker: WorkerProcess) -> None:
        start = now_ms()
        rng = random.Random(1)
        crowd_records = crowd(rng, self.customers, self.candidates, start)
        profiles = story_profiles() + [r for r in crowd_records if r["kind"] == "profile"]
        self.publish(broker, profiles)
        self.wait_for(
            worker, "tact_input_records_total", len(profiles), "the worker to read the profiles"
        )
        told = story(start)
        self.publish(broker, told)
        self.publish(broker, [r for r in crowd_records if r["kind"] == "candidate"])
        asyncio.run(self.publish_corrupt(broker))
        applications = sum(1 for r in told if r.get("type") == "application_submitted")
        candidates = sum(1 for r in told if r["kind"] == "candidate") + self.candidates
        # Each application's confirmation is decided at once, as a candidate of its own.
        self.wait_for(worker, "tact_decisions_total", candidates + applications, "the decisions")
        self.wait_for(worker, "tact_journey_transitions_total", 1, "an exit", transition="exited")
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

    def wait_for(
        self, worker: WorkerProcess, metric: str, count: int, what: str, **labels: str
    ) -> None:
        def reached() -> bool:
            if not worker.alive:
                raise RuntimeError(f"the worker stopped; see {worker.log_path}")
            return worker.metric(metric, **labels) >= count

        with self.console.status(f"waiting for {what}..."):
            wait_until(reached, 180, f"{what} (worker log: {worker.log_path})", every=0.3)

    def report(self, broker: EmbeddedBroker) -> None:
        t = self.topics
        topics = [t.decisions, t.dead_letters, t.journeys]
        records = asyncio.run(read_all(broker.bootstrap, topics, idle_s=1.0))
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
        self.console.print(self.journey_table(records))
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

    def journey_table(self, records: list[Any]) -> Table:
        decode = self.schemas["tact.JourneyTransition"].decode
        moves = sorted(
            (decode(r.value) for r in records if r.topic == self.topics.journeys),
            key=lambda m: (m["customer_id"], m["at"]),
        )
        table = Table(title="The loan journey: one story, ended the moment the customer acts")
        for column in ("customer", "application", "step", "transition", "reason"):
            table.add_column(column)
        for m in moves:
            row = (m["customer_id"], m["instance_key"], m["step"] or "", m["transition"])
            table.add_row(*row, m["reason"])
        return table
