"""Journeys as the policy defines them: a trigger, steps in order, and what ends an instance."""

from __future__ import annotations

from dataclasses import dataclass

from app.policy.model import Audience, Category, Urgency


@dataclass(frozen=True, slots=True)
class StepTiming:
    """When a step fires, counted from the previous step's due time (the trigger's, first).

    Exactly one way is set: `after_ms` later; at `at_s` seconds after local midnight,
    `day_offset` days on; `before_ms` before the time the trigger carried in attribute `of`;
    or when an event of type `wait_for` arrives, within `within_ms`."""

    after_ms: int | None = None
    day_offset: int = 0
    at_s: int | None = None
    before_ms: int | None = None
    of: str = ""
    wait_for: str = ""
    within_ms: int | None = None


@dataclass(frozen=True, slots=True)
class JourneyStep:
    name: str
    timing: StepTiming
    template: str
    category: Category
    urgency: Urgency
    channels: tuple[str, ...]
    audience: Audience = Audience.PERSONAL
    priority: int | None = None
    skip_if: frozenset[str] = frozenset()  # event types since entry that make the step pointless
    purpose: str = ""  # with no channels: the channel matrix decides


@dataclass(frozen=True, slots=True)
class Journey:
    name: str
    trigger: str  # the event type that starts an instance
    key: str  # the event attribute naming the instance ("": one instance per customer)
    exit_on: frozenset[str]
    goal: str  # "": none
    max_duration_ms: int
    steps: tuple[JourneyStep, ...]
    value_attribute: str = "value"  # on the goal event: what the journey brought

    @property
    def events(self) -> frozenset[str]:
        """Every event type this journey listens to."""
        waits = {s.timing.wait_for for s in self.steps if s.timing.wait_for}
        skips = {t for s in self.steps for t in s.skip_if}
        return frozenset({self.trigger, *self.exit_on, *waits, *skips} | ({self.goal} - {""}))
