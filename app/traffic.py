"""Sample traffic as JSON Lines records, the one generator of `tact demo`, `tact bench` and the
tests: the same list can be published to Kafka and replayed by `tact simulate`."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.clock import now_ms
from app.codecs.records import iso
from app.policy.model import CHANNELS

__all__ = ["DAY_MIX", "Mix", "activity", "now_ms", "random_profiles", "recorded_day"]

EVENT_TYPES = ("email_opened", "offer_clicked", "application_started", "app_opened")


def random_profiles(
    rng: random.Random, customers: int, zones: Sequence[str], reachable_share: float = 1.0
) -> list[dict[str, Any]]:
    """Customers c0..c<n-1>, each consenting to 1-4 random channels and reachable on each of
    them with probability `reachable_share`."""
    out = []
    for i in range(customers):
        consented = rng.sample(CHANNELS, rng.randint(1, 4))
        out.append(
            {
                "kind": "profile",
                "customer_id": f"c{i}",
                "timezone": rng.choice(zones),
                "consents": {c: True for c in consented},
                "reachable": {
                    c: reachable_share >= 1 or rng.random() < reachable_share for c in consented
                },
            }
        )
    return out


@dataclass(frozen=True)
class Mix:
    """What the generated candidates and events are like."""

    event_share: float = 0.2  # the rest are candidates
    urgencies: tuple[str, ...] = ("immediate", "normal", "low")
    categories: tuple[str, ...] = ("service", "transactional", "promo")
    category_weights: tuple[int, ...] = (1, 1, 4)
    channels: tuple[int, int] = (1, 3)  # how many channels a candidate lists, at least and most
    dedupe_share: float = 0.25  # candidates with a dedupe_key
    priorities: tuple[int | None, ...] = (None, 1, 5)
    event_types: tuple[str, ...] = EVENT_TYPES
    # Attributes given to events of a type; "{n}" becomes the record's number.
    event_attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def activity(
    rng: random.Random,
    customers: int,
    count: int,
    start_ms: int,
    span_ms: int,
    prefix: str = "",
    mix: Mix = Mix(),
) -> list[dict[str, Any]]:
    """Candidates and events for customers c0..c<n-1>, in time order, over `span_ms`."""
    out = []
    for i in range(count):
        at = iso(start_ms + span_ms * i // max(count, 1))
        customer = f"c{rng.randrange(customers)}"
        if rng.random() < mix.event_share:
            out.append(_event(rng, f"{prefix}e{i}", customer, at, mix, i))
        else:
            out.append(_candidate(rng, f"{prefix}m{i}", customer, at, mix, i))
    return out


def _event(
    rng: random.Random, event_id: str, customer: str, at: str, mix: Mix, n: int
) -> dict[str, Any]:
    kind = rng.choice(mix.event_types)
    attributes = {
        k: v.replace("{n}", str(n)) for k, v in mix.event_attributes.get(kind, {}).items()
    }
    return {
        "kind": "event",
        "event_id": event_id,
        "customer_id": customer,
        "type": kind,
        "occurred_at": at,
        "channel": rng.choice([*CHANNELS, None]),
        "attributes": attributes,
    }


def _candidate(
    rng: random.Random, message_id: str, customer: str, at: str, mix: Mix, n: int
) -> dict[str, Any]:
    dedupe = rng.random() < mix.dedupe_share
    return {
        "kind": "candidate",
        "message_id": message_id,
        "customer_id": customer,
        "category": rng.choices(mix.categories, mix.category_weights)[0],
        "audience": rng.choice(["personal", "mass"]),
        "priority": rng.choice(mix.priorities),
        "channels": rng.sample(CHANNELS, rng.randint(*mix.channels)),
        "urgency": rng.choice(mix.urgencies),
        "dedupe_key": f"{customer}-k{rng.randrange(3)}" if dedupe else None,
        "created_at": at,
        "template": "offer",
        "payload": {"n": str(n)},
    }


# A day of a bank's traffic: mostly campaign candidates, engagement events, and loan
# applications that some customers complete (the loan journey's trigger and goal).
DAY_MIX = Mix(
    event_share=0.3,
    event_types=(*EVENT_TYPES, "application_submitted", "application_completed"),
    event_attributes={"application_completed": {"amount": "5000"}},
)


def recorded_day(
    customers: int, records: int, start_ms: int, seed: int = 7, zones: Sequence[str] = ("UTC",)
) -> Iterator[dict[str, Any]]:
    """Profiles for every customer, then `records` minus those over 24 hours from `start_ms`."""
    rng = random.Random(seed)
    yield from random_profiles(rng, customers, zones)
    day = 24 * 3600 * 1000
    yield from activity(rng, customers, max(records - customers, 0), start_ms, day, mix=DAY_MIX)
