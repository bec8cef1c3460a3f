"""The journey load of `tact bench`: every customer enters a journey of STEPS timed steps, the
steps falling due at a steady rate; how late the worker releases each one by the wall clock
(the decision record's Kafka timestamp minus the step's due time, its decided_at), and the
worker's memory while it holds every instance.

Customer i's trigger happened at start - gap + i * gap / N, and the first step is due `gap +
lead` after it, each next one `gap` later: step k of customer i is due at start + lead + k * gap +
i * gap / N, so the steps of all customers fall due one after another at N / gap per second, the
first `lead` after the triggers are sent (time for the worker to read them all).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.codecs.records import iso

STEPS = 10
JOURNEY = "bench_journey"
TRIGGER = "bench_started"
TRIGGERS_READ_PER_S = 4000  # a lower bound of the worker's rate for the triggers: sets `lead`


@dataclass(frozen=True)
class JourneyLoad:
    customers: int
    due_per_s: float  # steps falling due each second, all customers together

    @property
    def steps(self) -> int:
        return self.customers * STEPS

    @property
    def gap_ms(self) -> int:
        return max(1, round(self.customers / self.due_per_s * 1000))

    @property
    def lead_ms(self) -> int:
        return 5000 + self.customers * 1000 // TRIGGERS_READ_PER_S

    @property
    def seconds(self) -> float:
        """From sending the triggers to the last step's due time."""
        return (self.lead_ms + STEPS * self.gap_ms) / 1000


def journey_policy(load: JourneyLoad) -> str:
    """A policy where every step is sent the moment it is due: no caps, no quiet hours."""
    steps = "".join(
        f"""
  [[journeys.steps]]
  name = "step_{k}"
  after = "{load.gap_ms + load.lead_ms if k == 0 else load.gap_ms}ms"
  template = "bench.step_{k}"
  category = "service"
  urgency = "immediate"
  channels = ["email"]
"""
        for k in range(STEPS)
    )
    return f"""version = "bench-journeys"

[dedupe]
window = "1h"

[limits]
max_messages_per_customer = 100  # ten steps each: a short dedupe window needs a small bound

[quiet_hours]
start = "21:00"
end = "09:00"
urgencies = []

[categories.service]
bypass_caps = true
counts_toward_caps = false
consent = "opt_out"

[[journeys]]
name = "{JOURNEY}"
trigger = "{TRIGGER}"
max_duration = "1d"
{steps}"""


def journey_profiles(load: JourneyLoad) -> list[dict[str, Any]]:
    return [
        {
            "kind": "profile",
            "customer_id": f"j{i}",
            "timezone": "UTC",
            "consents": {"email": True},
            "reachable": {"email": True},
        }
        for i in range(load.customers)
    ]


def journey_triggers(load: JourneyLoad, start_ms: int) -> list[dict[str, Any]]:
    n, gap = load.customers, load.gap_ms
    return [
        {
            "kind": "event",
            "event_id": f"enter-{i}",
            "customer_id": f"j{i}",
            "type": TRIGGER,
            "occurred_at": iso(start_ms - gap + i * gap // n),
        }
        for i in range(n)
    ]


async def release_lags_ms(bootstrap: str, topic: str, count: int, decode: Any) -> list[float]:
    """Every journey step's decision record on `topic`: its Kafka timestamp (when the worker
    produced it) minus its decided_at (the step's due time), sorted."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        lags: list[float] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                for record in records:
                    decision = decode(record.value)
                    if decision["journey"] is not None:
                        lags.append(float(record.timestamp - decision["decided_at"]))
        return sorted(lags)
    finally:
        await consumer.stop()


def read_lags(bootstrap: str, topic: str, partitions: int, decode: Any) -> list[float]:
    return asyncio.run(release_lags_ms(bootstrap, topic, partitions, decode))
