"""The [[journeys]] of a policy file, checked where they are read (see policy_file.py)."""

from __future__ import annotations

import re
from typing import Any

from app.policy.fields import FieldReader
from app.policy.journey_rules import Journey, JourneyStep, StepTiming
from app.policy.model import CHANNELS, Audience, Category, Urgency

NAME = re.compile(r"[a-z0-9_]{1,32}")  # part of a step's message_id and of metric labels
EVENT = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
AT = re.compile(r"^(same_day|next_day|\+(\d+)d) (\d\d:\d\d(?::\d\d)?)$")
JOURNEY_KEYS = (
    "name",
    "trigger",
    "key",
    "exit_on",
    "goal",
    "max_duration",
    "value_attribute",
    "steps",
)
STEP_KEYS = (
    "name",
    "after",
    "at",
    "before",
    "of",
    "wait_for",
    "within",
    "template",
    "category",
    "urgency",
    "channels",
    "purpose",
    "audience",
    "priority",
    "skip_if",
)
TIMINGS = ("after", "at", "before", "wait_for")
MAX_STEPS = 20


class JourneyReader(FieldReader):
    def journeys(self, raw: Any) -> tuple[Journey, ...]:
        if not isinstance(raw, list):
            raise self.fail("journeys", "must be an array of tables: write each as [[journeys]]")
        journeys = tuple(self.journey(item, f"journeys[{i}]") for i, item in enumerate(raw))
        self._unique([j.name for j in journeys], "journeys", "name")
        return journeys

    def journey(self, item: Any, path: str) -> Journey:
        if not isinstance(item, dict):
            raise self.fail(path, "must be a table written as [[journeys]]")
        self.check_keys(item, path, JOURNEY_KEYS)
        trigger = self.event(item.get("trigger"), f"{path}.trigger")
        exit_on = frozenset(self.events(item.get("exit_on", []), f"{path}.exit_on"))
        goal = self.event(item["goal"], f"{path}.goal") if "goal" in item else ""
        if trigger in exit_on or trigger == goal:
            raise self.fail(f"{path}.trigger", f"{trigger!r} both starts and ends the journey")
        return Journey(
            name=self.name(item.get("name"), f"{path}.name"),
            trigger=trigger,
            key=str(item.get("key", "")),
            exit_on=exit_on,
            goal=goal,
            max_duration_ms=self.bounded_duration(
                item.get("max_duration", "30d"),
                f"{path}.max_duration",
                "10s",
                "90d",
                "an instance lives this long at most",
            ),
            steps=self.steps(item.get("steps"), path),
            value_attribute=str(item.get("value_attribute", "value")),
        )

    def steps(self, raw: Any, path: str) -> tuple[JourneyStep, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.fail(
                f"{path}.steps", "a journey needs steps: write each as [[journeys.steps]]"
            )
        if len(raw) > MAX_STEPS:
            raise self.fail(f"{path}.steps", f"{len(raw)} steps; at most {MAX_STEPS}")
        steps = tuple(self.step(item, f"{path}.steps[{i}]") for i, item in enumerate(raw))
        self._unique([s.name for s in steps], f"{path}.steps", "name")
        return steps

    def step(self, item: Any, path: str) -> JourneyStep:
        if not isinstance(item, dict):
            raise self.fail(path, "must be a table written as [[journeys.steps]]")
        self.check_keys(item, path, STEP_KEYS)
        return JourneyStep(
            name=self.name(item.get("name"), f"{path}.name"),
            timing=self.timing(item, path),
            template=self.text(item.get("template"), f"{path}.template"),
            category=Category(
                self.one_of(
                    item.get("category", "service"),
                    f"{path}.category",
                    tuple(c.value for c in Category),
                )
            ),
            urgency=Urgency(
                self.one_of(
                    item.get("urgency", "normal"),
                    f"{path}.urgency",
                    tuple(u.value for u in Urgency),
                )
            ),
            channels=tuple(
                self.channels(item.get("channels"), f"{path}.channels", "purpose" in item)
            ),
            purpose=self.purpose(item.get("purpose", ""), f"{path}.purpose"),
            audience=Audience(
                self.one_of(
                    item.get("audience", "personal"),
                    f"{path}.audience",
                    tuple(a.value for a in Audience),
                )
            ),
            priority=self.integer(item["priority"], f"{path}.priority", -100, 100)
            if "priority" in item
            else None,
            skip_if=frozenset(self.events(item.get("skip_if", []), f"{path}.skip_if")),
        )

    def timing(self, item: dict[str, Any], path: str) -> StepTiming:
        given = [key for key in TIMINGS if key in item]
        if len(given) != 1:
            raise self.fail(
                f"{path}.after",
                'give exactly one of after = "2h", at = "next_day 10:00", '
                'before = "2h" (with of = "<attribute>") or wait_for = "<event>"',
            )
        kind = given[0]
        if kind == "after":
            return StepTiming(after_ms=self.duration(item["after"], f"{path}.after"))
        if kind == "at":
            day_offset, at_s = self.at(item["at"], f"{path}.at")
            return StepTiming(day_offset=day_offset, at_s=at_s)
        if kind == "before":
            of = self.text(item.get("of"), f"{path}.of")
            return StepTiming(before_ms=self.duration(item["before"], f"{path}.before"), of=of)
        if "within" not in item:
            raise self.fail(
                f"{path}.within", 'a wait_for step says how long it waits: within = "7d"'
            )
        return StepTiming(
            wait_for=self.event(item["wait_for"], f"{path}.wait_for"),
            within_ms=self.duration(item["within"], f"{path}.within"),
        )

    def at(self, value: Any, path: str) -> tuple[int, int]:
        match = AT.match(value) if isinstance(value, str) else None
        if not match:
            raise self.fail(
                path, f'{value!r}: write e.g. "next_day 10:00", "same_day 18:30" or "+2d 09:00"'
            )
        day = {"same_day": 0, "next_day": 1}.get(match.group(1))
        return (int(match.group(2)) if day is None else day), self.clock(match.group(3), path)

    def name(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not NAME.fullmatch(value):
            raise self.fail(path, "missing, or not lower_snake_case of at most 32 characters")
        return value

    def event(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not EVENT.fullmatch(value):
            raise self.fail(path, "missing, or not an event type (letters, digits, _ . : -)")
        return value

    def events(self, value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(path, 'must be a list of event types, e.g. ["application_withdrawn"]')
        return [self.event(v, path) for v in value]

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value or len(value.encode()) > 128:
            raise self.fail(path, "missing, or not a text of at most 128 bytes")
        return value

    def channels(self, value: Any, path: str, purpose: bool = False) -> list[str]:
        channels = self.choices(value if value is not None else [], path, CHANNELS)
        if not channels and not purpose:
            raise self.fail(
                path,
                f"list at least one of {', '.join(CHANNELS)}, or give a purpose for the matrix",
            )
        return channels

    def purpose(self, value: Any, path: str) -> str:
        if value != "" and (not isinstance(value, str) or not NAME.fullmatch(value)):
            raise self.fail(path, "not lower_snake_case (a row of the channel matrix)")
        return str(value)

    def _unique(self, names: list[str], path: str, key: str) -> None:
        for i, name in enumerate(names):
            if name in names[:i]:
                raise self.fail(
                    f"{path}[{i}].{key}", f"{name!r} is used twice; names must be unique"
                )
