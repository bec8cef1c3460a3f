"""A policy document (TOML) turned into a validated, typed Policy.

Every error names the file, the field and, where it can be found, the line, and says how to fix
it. Values that would break a guarantee or let memory grow without bound are refused, with why.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from app.policy.bounds import CHANGELOG_RECORD_LIMIT, worst_case_state_bytes
from app.policy.channel_file import CHANNEL_KEYS, ChannelReader
from app.policy.fields import PolicyError
from app.policy.model import CHANNELS, Audience, Category, Urgency
from app.policy.rules import CapRule, CategoryRule, Limits, Policy, QuietHours

__all__ = ["PolicyError", "load_policy", "parse_policy"]

CALENDAR_PERIODS = ("day", "week", "month")
TOP_KEYS = (
    "version",
    "dedupe",
    "quiet_hours",
    "arbitration",
    "priority",
    "channels",
    "categories",
    "caps",
    "limits",
    "journeys",
    "matrix",
    "engagement",
    "feedback",
    "signals",
)
CONSENT_DEFAULTS = ("opt_in", "opt_out")
# What a category does unless its table says otherwise: (bypass_caps, consent)
CATEGORY_DEFAULTS = {
    Category.SERVICE: (True, "opt_out"),
    Category.TRANSACTIONAL: (True, "opt_out"),
    Category.PROMO: (False, "opt_in"),
}


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
    reader = _PolicyReader(text, source)
    policy = reader.policy(doc)
    reader.check_size(policy)
    return policy


def fingerprint(doc: Mapping[str, Any]) -> str:
    """A hash of what the document says (not of its comments or layout)."""
    canonical = json.dumps(doc, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


class _PolicyReader(ChannelReader):
    def policy(self, doc: Mapping[str, Any]) -> Policy:
        self.table(doc, "", TOP_KEYS)
        channels = self.table(doc, "channels", CHANNEL_KEYS)
        return Policy(
            version=f"{self.version(doc)}+{fingerprint(doc)}",
            dedupe_window_ms=self.dedupe_window(doc),
            quiet_hours=self.quiet_hours(doc),
            arbitration_window_ms=self.arbitration_window(doc),
            category_rank=self.category_rank(doc),
            audience_rank=self.audience_rank(doc),
            categories=self.category_rules(doc),
            caps=self.caps(doc.get("caps", [])),
            honour_preferred_channel=self.boolean(
                channels.get("honour_preferred_channel", False), "channels.honour_preferred_channel"
            ),
            assume_reachable=frozenset(
                self.choices(
                    channels.get("assume_reachable", ["email", "messenger"]),
                    "channels.assume_reachable",
                    CHANNELS,
                )
            ),
            limits=self.limits(doc),
            journeys=self.journeys(doc.get("journeys", [])),
            channel_rules=self.channel_rules(doc),
            detractor_caps=self.detractor_caps(doc),
        )

    def detractor_caps(self, doc: Mapping[str, Any]) -> tuple[CapRule, ...]:
        """[[feedback.caps]]: for a detractor, besides the others (the shipped policy: promo at
        most once in a rolling 7 days). None unless the policy says: a policy written before
        them keeps its meaning, and its size bound."""
        feedback = doc.get("feedback", {})
        raw = feedback.get("caps", []) if isinstance(feedback, dict) else []
        if not isinstance(raw, list):
            raise self.fail("feedback.caps", "must be an array of tables: [[feedback.caps]]")
        caps = tuple(self.cap(item, f"feedback.caps[{i}]") for i, item in enumerate(raw))
        taken = {cap.name for cap in self.caps(doc.get("caps", []))}
        for i, cap in enumerate(caps):
            if cap.name in taken:
                raise self.fail(f"feedback.caps[{i}].name", f"{cap.name!r} is a [[caps]] name too")
        return caps

    def version(self, doc: Mapping[str, Any]) -> str:
        version = doc.get("version")
        if not isinstance(version, str) or not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", version):
            raise self.fail(
                "version",
                "missing or not a short name: every policy names its version, e.g. "
                'version = "2026-11-a" (letters, digits, . _ -)',
            )
        return version

    def dedupe_window(self, doc: Mapping[str, Any]) -> int:
        table = self.table(doc, "dedupe", ("window",))
        return self.bounded_duration(
            table.get("window", "7d"),
            "dedupe.window",
            "1h",
            "90d",
            "a message_id is decided once within this window, so a shorter one would let a "
            "redelivered message out again; a longer one only grows every customer's state",
        )

    def arbitration_window(self, doc: Mapping[str, Any]) -> int:
        table = self.table(doc, "arbitration", ("window",))
        return self.bounded_duration(
            table.get("window", "0s"),
            "arbitration.window",
            "0s",
            "1h",
            "candidates wait this long for rivals; beyond an hour it is a delay, not a contest",
        )

    def category_rank(self, doc: Mapping[str, Any]) -> dict[Category, int]:
        return {Category(n): i for i, n in enumerate(self.priority(doc, "categories", Category))}

    def audience_rank(self, doc: Mapping[str, Any]) -> dict[Audience, int]:
        return {Audience(n): i for i, n in enumerate(self.priority(doc, "audiences", Audience))}

    def priority(self, doc: Mapping[str, Any], key: str, kind: type[StrEnum]) -> list[str]:
        """[priority] `key`: every member of `kind`, highest first."""
        table = self.table(doc, "priority", ("categories", "audiences"))
        names = tuple(member.value for member in kind)
        return self.ranking(table.get(key, list(names)), f"priority.{key}", names)

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
        tables = self.table(doc, "categories", tuple(c.value for c in Category))
        return {category: self.category_rule(tables, category) for category in Category}

    def category_rule(self, tables: Mapping[str, Any], category: Category) -> CategoryRule:
        keys = ("bypass_caps", "counts_toward_caps", "requires_consent", "consent", "send_time")
        path = f"categories.{category.value}"
        table = self.table(tables, path, keys)
        bypass, consent = CATEGORY_DEFAULTS[category]
        return CategoryRule(
            bypass_caps=self.boolean(table.get("bypass_caps", bypass), f"{path}.bypass_caps"),
            counts_toward_caps=self.boolean(
                table.get("counts_toward_caps", True), f"{path}.counts_toward_caps"
            ),
            requires_consent=self.boolean(
                table.get("requires_consent", True), f"{path}.requires_consent"
            ),
            opt_in=self.one_of(table.get("consent", consent), f"{path}.consent", CONSENT_DEFAULTS)
            == "opt_in",
            send_time=self.one_of(
                table.get("send_time", "now"), f"{path}.send_time", ("now", "engagement")
            ),
        )

    def limits(self, doc: Mapping[str, Any]) -> Limits:
        keys = (
            "max_pending_per_customer",
            "max_held_bytes",
            "max_messages_per_customer",
            "context_events",
            "max_journeys_per_customer",
        )
        table = self.table(doc, "limits", keys)
        default = Limits()

        def read(key: str, least: int, most: int) -> int:
            return self.integer(table.get(key, getattr(default, key)), f"limits.{key}", least, most)

        return Limits(
            max_pending_per_customer=read("max_pending_per_customer", 1, 1000),
            max_held_bytes=read("max_held_bytes", 1024, 512 * 1024),
            max_messages_per_customer=read("max_messages_per_customer", 10, 100_000),
            context_events=read("context_events", 0, 50),
            max_journeys_per_customer=read("max_journeys_per_customer", 1, 50),
        )

    def check_size(self, policy: Policy) -> None:
        worst = worst_case_state_bytes(policy)
        if worst > CHANGELOG_RECORD_LIMIT:
            raise self.fail(
                "limits.max_messages_per_customer",
                f"these limits let one customer's state grow to {worst:,} bytes, and a state must "
                f"fit in one changelog record ({CHANGELOG_RECORD_LIMIT:,} bytes): lower "
                "limits.max_messages_per_customer (or the dedupe window, or the longest cap)",
            )

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
        if not isinstance(item, dict):
            raise self.fail(path, "must be a table written as [[caps]]")
        self.check_keys(
            item, path, ("name", "limit", "window", "calendar", "channels", "categories")
        )
        if ("window" in item) == ("calendar" in item):
            raise self.fail(
                f"{path}.window", 'give exactly one of window = "24h" or calendar = "day"'
            )
        return CapRule(
            name=self.cap_name(item, path),
            limit=self.integer(item.get("limit"), f"{path}.limit", 0, 10_000),
            window_ms=self.bounded_duration(
                item["window"], f"{path}.window", "1m", "90d", "a cap counts sends over this span"
            )
            if "window" in item
            else None,
            calendar=self.one_of(item["calendar"], f"{path}.calendar", CALENDAR_PERIODS)
            if "calendar" in item
            else None,
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

    def cap_name(self, item: Mapping[str, Any], path: str) -> str:
        name = item.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,40}", name):
            raise self.fail(
                f"{path}.name", "missing or not lower_snake_case (it appears in reasons)"
            )
        return name
