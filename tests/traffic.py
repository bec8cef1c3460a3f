"""Generated traffic as JSON Lines records: the same list feeds Kafka and `simulate`."""

from __future__ import annotations

import random
from typing import Any

from app.codecs.records import iso
from app.policy.localtime import seconds_into_day
from app.policy.model import CHANNELS
from app.traffic import random_profiles

ZONES = [
    "UTC",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Los_Angeles",
]
EVENT_TYPES = ["email_opened", "offer_clicked", "application_started", "app_opened"]


def calm_zones(at_ms: int, margin_s: int = 30 * 60) -> list[str]:
    """Zones whose local clock is not near 09:00 or 21:00, so no quiet-hours edge is crossed
    while a test runs (the worker decides at record time; releases happen at wall-clock time)."""

    def calm(zone: str) -> bool:
        now = seconds_into_day(at_ms, zone)
        return all(abs(now - edge) > margin_s for edge in (9 * 3600, 21 * 3600))

    return [z for z in ZONES if calm(z)]


def profiles(rng: random.Random, customers: int, zones: list[str]) -> list[dict[str, Any]]:
    return random_profiles(rng, customers, zones, reachable_share=0.9)


def activity(
    rng: random.Random, customers: int, count: int, start_ms: int, span_ms: int, prefix: str = ""
) -> list[dict[str, Any]]:
    """Candidates (about 4 in 5) and events, in time order, over `span_ms` from `start_ms`."""
    out: list[dict[str, Any]] = []
    for i in range(count):
        at = start_ms + span_ms * i // max(count, 1)
        customer = f"c{rng.randrange(customers)}"
        if rng.random() < 0.2:
            out.append(
                {
                    "kind": "event",
                    "event_id": f"{prefix}e{i}",
                    "customer_id": customer,
                    "type": rng.choice(EVENT_TYPES),
                    "occurred_at": iso(at),
                    "channel": rng.choice([*CHANNELS, None]),
                }
            )
            continue
        out.append(
            {
                "kind": "candidate",
                "message_id": f"{prefix}m{i}",
                "customer_id": customer,
                "category": rng.choices(["service", "transactional", "promo"], [1, 1, 4])[0],
                "audience": rng.choice(["personal", "mass"]),
                "priority": rng.choice([None, 1, 5]),
                "channels": rng.sample(CHANNELS, rng.randint(1, 3)),
                "urgency": rng.choice(["immediate", "normal", "low"]),
                "dedupe_key": rng.choice([None, None, None, f"{customer}-k{rng.randrange(3)}"]),
                "created_at": iso(at),
                "template": "offer",
                "payload": {"n": str(i)},
            }
        )
    return out
