"""Sample traffic as JSON Lines records, shared by `tact demo`, `tact bench` and the tests."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from app.policy.model import CHANNELS


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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
