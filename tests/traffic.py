"""The tests' traffic: Tact's own generator (app/traffic.py), in zones that stay calm."""

from __future__ import annotations

import random
from typing import Any

from app.policy.localtime import seconds_into_day
from app.traffic import activity, random_profiles

__all__ = ["ZONES", "activity", "calm_zones", "profiles"]

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


def calm_zones(at_ms: int, margin_s: int = 30 * 60) -> list[str]:
    """Zones whose local clock is not near 09:00 or 21:00, so no quiet-hours edge is crossed
    while a test runs (the worker decides at record time; releases happen at wall-clock time)."""

    def calm(zone: str) -> bool:
        now = seconds_into_day(at_ms, zone)
        return all(abs(now - edge) > margin_s for edge in (9 * 3600, 21 * 3600))

    return [z for z in ZONES if calm(z)]


def profiles(rng: random.Random, customers: int, zones: list[str]) -> list[dict[str, Any]]:
    return random_profiles(rng, customers, zones, reachable_share=0.9)
