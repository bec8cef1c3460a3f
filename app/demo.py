"""`tact demo`: the embedded broker, a real worker process and a story told on it, then a
simulated day through the same core, so that every candidate reaches its final decision
whatever the hour the demo runs."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
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
from app.demo_day import DAY, bombing_chart, simulate_day
from app.policy.localtime import local
from app.policy.model import FINAL_OUTCOMES
from app.policy.policy_file import load_policy
from app.policy.reasons import reason_label
from app.simulate import parse_record, replay
from app.stream.io import ensure_tact_topics
from app.traffic import Mix, activity, now_ms, random_profiles
from app.waiting import wait_until
from app.worker_process import WorkerProcess

PARTITIONS = 4
# The shipped policy with the mission's journeys (the default policy plus [[journeys]]).
POLICY = Path(__file__).resolve().parents[1] / "deploy" / "policies" / "journeys.toml"
ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Europe/London", "Australia/Sydney"]


DAY_ZONES = [
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
]


def zones_at(now: int, first_hour: int, last_hour: int) -> list[str]:
    """The zones whose local hour is in [first_hour, last_hour] now (wrapping past midnight)."""

    def inside(zone: str) -> bool:
        hour = local(now, zone).hour
        if first_hour <= last_hour:
            return first_hour <= hour <= last_hour
        return hour >= first_hour or hour <= last_hour

    return [z for z in DAY_ZONES if inside(z)]


def story_profiles(now: int) -> list[dict[str, Any]]:
    """anna, ben and chen live where it is day now (their messages go out at once); dora where
    it is night (quiet hours hold her offer until 09:00 her time)."""
    day, night = zones_at(now, 10, 18), zones_at(now, 23, 5)
    return [
        {
            "kind": "profile",
            "customer_id": "anna",
            "timezone": day[0],
            "consents": {"email": True, "sms": True, "push": True},
            "reachable": {"email": True, "sms": True, "push": False},
        },
        {
            "kind": "profile",
            "customer_id": "ben",
            "timezone": day[-1],
            "consents": {"email": True, "sms": True},
            "reachable": {"email": True, "sms": True},
        },
        {
            "kind": "profile",
            "customer_id": "chen",
            "timezone": day[len(day) // 2],
            "consents": {"email": True},
            "reachable": {"email": True},
        },
        {
            "kind": "profile",
            "customer_id": "dora",
            "timezone": night[0],
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
    (7500, _candidate("dora-offer", "dora", channels=["email"])),
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
    def __init__(self, console: Console, customers: int, candidates: int, chart: Path) -> None:
        self.console = console
        self.customers = customers
        self.candidates = candidates
        self.chart = chart
        self.topics = TopicNames.with_prefix("")
        self.schemas = Schemas.load()
        self.policy = load_policy(POLICY)
        self.work = Path(tempfile.mkdtemp(prefix="tact-demo-"))

    def run(self, keep_running: bool) -> None:
        try:
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
                finally:
                    worker.stop()
            self.simulated_day()
        except KeyboardInterrupt:
            pass
        finally:
            shutil.rmtree(self.work, ignore_errors=True)

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
        people = story_profiles(start)
        profiles = people + [r for r in crowd_records if r["kind"] == "profile"]
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
        for person in people:
            self.console.print(
                f"[bold]{person['customer_id']:<7}[/] lives in {person['timezone']}"
                f" ({local(start, person['timezone']):%H:%M} there now)"
            )
        self.report(broker, people + told, start)

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

    def report(self, broker: EmbeddedBroker, told: list[dict[str, Any]], start: int) -> None:
        t = self.topics
        topics = [t.decisions, t.dead_letters, t.journeys]
        records = asyncio.run(read_all(broker.bootstrap, topics, idle_s=1.0))
        decode = self.schemas["tact.Decision"].decode
        decisions = [decode(r.value) for r in records if r.topic == t.decisions]
        self.console.print(self.story_table(decisions, told, start))
        self.console.print(self.journey_table(records))
        for r in records:
            if r.topic == t.dead_letters:
                letter = self.schemas["tact.DeadLetter"].decode(r.value)
                self.console.print(
                    f"[red]dead letter[/] {letter['source_topic']}@{letter['source_offset']}: "
                    f"{letter['error']}"
                )
        crowd = [d for d in decisions if d["message_id"].startswith("crowd-")]
        self.console.print(
            by_reason(
                f"The crowd now: {self.candidates:,} candidates for {self.customers:,} customers",
                Counter(
                    (d["outcome"], reason_label(d["reasons"][0]) if d["reasons"] else "")
                    for d in crowd
                ),
            )
        )

    def story_table(
        self, decisions: list[dict[str, Any]], told: list[dict[str, Any]], start: int
    ) -> Table:
        """Each story message: what the worker decided now, and how it ends by the end of the
        day (the same records through the same core, the clock run on a day)."""
        live = {d["message_id"]: d for d in decisions if not d["message_id"].startswith("crowd-")}
        records = enumerate((parse_record(r) for r in told), 1)
        ends = replay(records, self.policy, until=start + DAY).decisions
        final = {d.message_id: d for d in ends if d.outcome in FINAL_OUTCOMES}
        table = Table(title="The story: every candidate gets one decision, with its reasons")
        for column in ("message", "now", "by the day's end", "why"):
            table.add_column(column)
        for message_id in dict.fromkeys([*live, *final]):
            now = live.get(message_id)
            end = final.get(message_id)
            why = (end.reasons if end else tuple(now["reasons"]) if now else ()) or ("",)
            ending = (
                "-"
                if end is None
                else end.outcome.value + (f" {end.channel}" if end.channel else "")
            )
            if end is not None and end.decided_at > start + 60_000:
                ending += f" {local(end.decided_at, 'UTC'):%H:%M}Z"
            step = end.step if end else now["step"] if now else None
            customer = end.customer_id if end else now["customer_id"] if now else ""
            label = f"{customer}/{step}" if step else message_id  # journey ids are long
            table.add_row(label, now["outcome"] if now else "-", ending, why[0])
        return table

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

    def simulated_day(self) -> None:
        with self.console.status("a simulated day through the same core..."):
            day = simulate_day(self.policy, self.customers, self.candidates, now_ms(), ZONES)
        summary = day.summary
        counts = Counter(
            {
                ("sent", ""): summary.outcomes["sent"],
                **{("not sent", r): n for r, n in summary.not_sent_by_reason.items()},
                **{("held first", r): n for r, n in summary.deferred_by_reason.items()},
            }
        )
        self.console.print(
            by_reason(
                f"A simulated day: {self.candidates:,} candidates, {self.customers:,} "
                "customers, every one decided",
                counts,
            )
        )
        offered = sorted(day.offered.values())
        sent = sorted(summary.sends_per_customer.get(c, 0) for c in day.offered)
        self.console.print(
            f"messages per customer in the day: without a policy max {offered[-1]}, "
            f"p50 {offered[len(offered) // 2]}; with Tact max {sent[-1]}, "
            f"p50 {sent[len(sent) // 2]}; customers over a cap: {len(summary.cap_breaches)}"
        )
        bombing_chart(day, self.chart)
        self.console.print(f"[bold]chart[/]   {self.chart}")


def by_reason(title: str, counts: Counter[tuple[str, str]], top: int = 12) -> Table:
    table = Table(title=title)
    for column, justify in (("outcome", "left"), ("reason", "left"), ("count", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for (outcome, reason), n in counts.most_common(top):
        table.add_row(outcome, reason, f"{n:,}")
    return table
