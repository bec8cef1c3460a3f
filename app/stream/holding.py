"""What a partition holds for later: candidates held and journey instances live (the gauges)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from app.policy.model import CustomerState


@dataclass
class Holding:
    held: int = 0  # candidates held
    live: Counter[str] = field(default_factory=Counter)  # journey -> instances live

    def add(self, state: CustomerState | None, sign: int) -> None:
        """Count a customer's state in (sign +1) or out (-1)."""
        if state is None:
            return
        self.held += sign * len(state.pending)
        for instance in state.journeys:
            self.live[instance.journey] += sign

    def change(self, before: CustomerState | None, after: CustomerState | None) -> None:
        self.add(before, -1)
        self.add(after, +1)
