"""A policy document (TOML) turned into a validated, typed Policy.

Every error names the file, the field and, where it can be found, the line, and says how to fix it.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from app.policy.model import CHANNELS, DAY, HOUR, MINUTE, SECOND, Audience, Category, Urgency

CALENDAR_PERIODS = ("day", "week", "month")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")


class PolicyError(ValueError):
    """A policy document that cannot be used, with where and how to fix it."""


@dataclass(frozen=True, slots=True)
class CapRule:
    name: str
    limit: int
    window_ms: int | None  # rolling window, or
    calendar: str | None  # a calendar period in the customer's time zone
    channels: frozenset[str]  # empty: all channels
    categories: frozenset[Category]  # empty: all categories

    def counts(self, channel: str, category: Category) -> bool:
        return (not self.channels or channel in self.channels) and (
            not self.categories or category in self.categories
        )

    @property
    def per_channel(self) -> bool:
        return bool(self.channels)


@dataclass(frozen=True, slots=True)
class CategoryRule:
    bypass_caps: bool
    counts_toward_caps: bool
    requires_consent: bool


@dataclass(frozen=True, slots=True)
class QuietHours:
    start_s: int  # seconds after local midnight
    end_s: int
    urgencies: frozenset[Urgency]


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    dedupe_window_ms: int
    quiet_hours: QuietHours | None
    arbitration_window_ms: int
    category_rank: Mapping[Category, int]
    audience_rank: Mapping[Audience, int]
    categories: Mapping[Category, CategoryRule]
    caps: tuple[CapRule, ...]
    honour_preferred_channel: bool
    max_pending_per_customer: int
    context_events: int

    # Derived from the rules above, once, for the hot path:
    history_ms: int = field(default=0, init=False)
    counted_categories: frozenset[Category] = field(
        default=frozenset(), init=False, repr=False, compare=False
    )
    caps_limiting: Mapping[tuple[str, Category, bool], tuple[CapRule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "history_ms", history_for(self.caps))
        counted = frozenset(c for c, rule in self.categories.items() if rule.counts_toward_caps)
        object.__setattr__(self, "counted_categories", counted)
        object.__setattr__(self, "caps_limiting", caps_limiting(self.caps, self.categories))

    def caps_for(self, channel: str, category: Category, per_channel: bool) -> tuple[CapRule, ...]:
        """The caps that can hold back a send of `category` on `channel`."""
        return self.caps_limiting[channel, category, per_channel]


def caps_limiting(
    caps: tuple[CapRule, ...], categories: Mapping[Category, CategoryRule]
) -> dict[tuple[str, Category, bool], tuple[CapRule, ...]]:
    return {
        (channel, category, per_channel): ()
        if categories[category].bypass_caps
        else tuple(c for c in caps if c.per_channel == per_channel and c.counts(channel, category))
        for channel in CHANNELS
        for category in Category
        for per_channel in (False, True)
    }


def history_for(caps: tuple[CapRule, ...]) -> int:
    """How far back sends must be remembered for every cap to be checked."""
    calendar_span = {"day": 2 * DAY, "week": 8 * DAY, "month": 32 * DAY}
    spans = [cap.window_ms or calendar_span[cap.calendar or "day"] for cap in caps]
    # A send can sit up to a window after another one (out-of-order times), so keep two.
    return 2 * max(spans, default=0)


def load_policy(path: str | Path | None = None) -> Policy:
    """Read a policy file; without a path, the shipped default policy."""
    if path is None:
        text = resources.files("app.policy").joinpath("default_policy.toml").read_text()
        return parse_policy(text, "default_policy.toml")
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file ({exc.strerror})") from exc
    return parse_policy(text, str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc
    return _Reader(text, source).policy(doc)


class _Reader:
    """Walks the TOML document, checking each field where it is read."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def fail(self, path: str, problem: str) -> PolicyError:
        line = self._line_of(path)
        where = f"{self.source}:{line}" if line else self.source
        return PolicyError(f"{where}: {path}: {problem}")

    def _line_of(self, path: str) -> int | None:
        key = re.sub(r"\[\d+\]", "", path).split(".")[-1]
        index = re.search(r"\[(\d+)\]", path)
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        matches = [n for n, line in enumerate(self.lines, 1) if pattern.match(line)]
        if index and len(matches) > int(index.group(1)):
            return matches[int(index.group(1))]
        return matches[0] if matches else None

    def table(self, doc: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = doc.get(path.split(".")[-1], {}) if path else doc
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table, e.g. [" + path + "]")
        self._check_keys(value, path, allowed)
        return value

    def duration(self, value: Any, path: str) -> int:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise self.fail(path, f'{value!r} is not a duration (write e.g. "90s", "24h", "7d")')
        return int(match.group(1)) * _UNIT_MS[match.group(2)]

    def clock(self, value: Any, path: str) -> int:
        match = _CLOCK.match(value) if isinstance(value, str) else None
        if not match:
            raise self.fail(path, f'{value!r} is not a time of day (write e.g. "21:00")')
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"{value!r} must be true or false")
        return value

    def positive_int(self, value: Any, path: str, minimum: int = 1) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(path, f"{value!r} must be a whole number >= {minimum}")
        return value

    def choices(self, value: Any, path: str, known: tuple[str, ...]) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, f"must be a list of names from: {', '.join(known)}")
        for item in value:
            if item not in known:
                raise self.fail(path, f"{item!r} is not one of: {', '.join(known)}")
        if len(set(value)) != len(value):
            raise self.fail(path, "lists a name twice")
        return list(value)

    def ranking(self, value: Any, path: str, known: tuple[str, ...]) -> list[str]:
        names = self.choices(value, path, known)
        if sorted(names) != sorted(known):
            raise self.fail(path, f"must rank every one of: {', '.join(known)}")
        return names

    def policy(self, doc: Mapping[str, Any]) -> Policy:
        top = (
            "version",
            "dedupe",
            "quiet_hours",
            "arbitration",
            "priority",
            "channels",
            "categories",
            "caps",
            "limits",
        )
        self.table(doc, "", top)
        version = doc.get("version")
        if not isinstance(version, str) or not version:
            raise self.fail(
                "version", 'missing: every policy names its version, e.g. version = "2026-11-a"'
            )
        dedupe = self.table(doc, "dedupe", ("window",))
        arbitration = self.table(doc, "arbitration", ("window",))
        priority = self.table(doc, "priority", ("categories", "audiences"))
        channels = self.table(doc, "channels", ("honour_preferred_channel",))
        limits = self.table(doc, "limits", ("max_pending_per_customer", "context_events"))
        categories = tuple(c.value for c in Category)
        audiences = tuple(a.value for a in Audience)
        return Policy(
            version=version,
            dedupe_window_ms=self.duration(dedupe.get("window", "7d"), "dedupe.window"),
            quiet_hours=self.quiet_hours(doc),
            arbitration_window_ms=self.duration(
                arbitration.get("window", "0s"), "arbitration.window"
            ),
            category_rank={
                Category(n): i
                for i, n in enumerate(
                    self.ranking(
                        priority.get("categories", list(categories)),
                        "priority.categories",
                        categories,
                    )
                )
            },
            audience_rank={
                Audience(n): i
                for i, n in enumerate(
                    self.ranking(
                        priority.get("audiences", list(audiences)), "priority.audiences", audiences
                    )
                )
            },
            categories=self.category_rules(doc),
            caps=self.caps(doc.get("caps", [])),
            honour_preferred_channel=self.boolean(
                channels.get("honour_preferred_channel", False), "channels.honour_preferred_channel"
            ),
            max_pending_per_customer=self.positive_int(
                limits.get("max_pending_per_customer", 100), "limits.max_pending_per_customer"
            ),
            context_events=self.positive_int(
                limits.get("context_events", 10), "limits.context_events", minimum=0
            ),
        )

    def quiet_hours(self, doc: Mapping[str, Any]) -> QuietHours | None:
        if "quiet_hours" not in doc:
            return None
        table = self.table(doc, "quiet_hours", ("start", "end", "urgencies"))
        for key in ("start", "end"):
            if key not in table:
                raise self.fail(f"quiet_hours.{key}", 'missing (write e.g. start = "21:00")')
        start = self.clock(table["start"], "quiet_hours.start")
        end = self.clock(table["end"], "quiet_hours.end")
        if start == end:
            raise self.fail("quiet_hours.end", "equals start; remove [quiet_hours] to disable them")
        urgencies = self.choices(
            table.get("urgencies", ["normal", "low"]),
            "quiet_hours.urgencies",
            tuple(u.value for u in Urgency),
        )
        return QuietHours(start, end, frozenset(Urgency(u) for u in urgencies))

    def category_rules(self, doc: Mapping[str, Any]) -> dict[Category, CategoryRule]:
        keys = ("bypass_caps", "counts_toward_caps", "requires_consent")
        tables = self.table(doc, "categories", tuple(c.value for c in Category))
        defaults = {Category.SERVICE: True, Category.TRANSACTIONAL: True, Category.PROMO: False}
        rules = {}
        for category in Category:
            path = f"categories.{category.value}"
            table = self.table(tables, path, keys)
            rules[category] = CategoryRule(
                bypass_caps=self.boolean(
                    table.get("bypass_caps", defaults[category]), f"{path}.bypass_caps"
                ),
                counts_toward_caps=self.boolean(
                    table.get("counts_toward_caps", True), f"{path}.counts_toward_caps"
                ),
                requires_consent=self.boolean(
                    table.get("requires_consent", True), f"{path}.requires_consent"
                ),
            )
        return rules

    def caps(self, raw: Any) -> tuple[CapRule, ...]:
        if not isinstance(raw, list):
            raise self.fail("caps", "must be an array of tables: write each cap as [[caps]]")
        caps = tuple(self.cap(item, f"caps[{i}]") for i, item in enumerate(raw))
        names = [cap.name for cap in caps]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise self.fail(
                    f"caps[{i}].name", f"{name!r} is used by two caps; names must be unique"
                )
        return caps

    def cap(self, item: Any, path: str) -> CapRule:
        keys = ("name", "limit", "window", "calendar", "channels", "categories")
        if not isinstance(item, dict):
            raise self.fail(path, "must be a table written as [[caps]]")
        self._check_keys(item, path, keys)
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]+", name):
            raise self.fail(
                f"{path}.name", "missing or not lower_snake_case (it appears in reasons)"
            )
        if ("window" in item) == ("calendar" in item):
            raise self.fail(
                f"{path}.window", 'give exactly one of window = "24h" or calendar = "day"'
            )
        calendar = item.get("calendar")
        if calendar is not None and calendar not in CALENDAR_PERIODS:
            raise self.fail(f"{path}.calendar", f"{calendar!r} is not one of: day, week, month")
        return CapRule(
            name=name,
            limit=self.positive_int(item.get("limit"), f"{path}.limit", minimum=0),
            window_ms=self.duration(item["window"], f"{path}.window") if "window" in item else None,
            calendar=calendar,
            channels=frozenset(
                self.choices(item.get("channels", []), f"{path}.channels", CHANNELS)
            ),
            categories=frozenset(
                Category(c)
                for c in self.choices(
                    item.get("categories", []),
                    f"{path}.categories",
                    tuple(c.value for c in Category),
                )
            ),
        )

    def _check_keys(self, item: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
        for key in item:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                fix = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(allowed)}"
                raise self.fail(f"{path}.{key}" if path else key, f"unknown key ({fix})")
