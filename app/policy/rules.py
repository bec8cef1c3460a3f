"""The policy as typed values: what `policy_file.py` reads from TOML, and the core decides by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.policy.channel_rules import ChannelRules
from app.policy.history import send_class
from app.policy.journey_rules import Journey
from app.policy.model import CHANNELS, DAY, Audience, Category, Urgency


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
    # consent = "opt_in": a channel needs the customer's yes (profile or event);
    # "opt_out": a channel is allowed unless the customer said no.
    opt_in: bool = True
    send_time: str = "now"  # "engagement": held for the customer's best local hour


@dataclass(frozen=True, slots=True)
class QuietHours:
    start_s: int  # seconds after local midnight
    end_s: int
    urgencies: frozenset[Urgency]


@dataclass(frozen=True, slots=True)
class Limits:
    """What one customer's state may hold (see bounds.py for the size this allows)."""

    max_pending_per_customer: int = 20  # held candidates; beyond: suppressed, pending_limit
    max_held_bytes: int = 64 * 1024  # their size together; beyond: suppressed, pending_limit
    max_messages_per_customer: int = 1000  # decided in the dedupe window; beyond: customer_limit
    context_events: int = 10  # recent events remembered and passed to gateways as context
    max_journeys_per_customer: int = 10  # live journey instances; beyond: refused


@dataclass(frozen=True, slots=True)
class Policy:
    version: str  # the file's own version, "+", and a hash of what the file says
    dedupe_window_ms: int
    quiet_hours: QuietHours | None
    arbitration_window_ms: int
    category_rank: Mapping[Category, int]
    audience_rank: Mapping[Audience, int]
    categories: Mapping[Category, CategoryRule]
    caps: tuple[CapRule, ...]
    honour_preferred_channel: bool
    # Channels reachable unless the profile says false; the others need an explicit true.
    assume_reachable: frozenset[str] = frozenset({"email", "messenger"})
    limits: Limits = Limits()
    journeys: tuple[Journey, ...] = ()
    channel_rules: ChannelRules = field(default_factory=ChannelRules)
    detractor_caps: tuple[CapRule, ...] = ()  # for a customer whose NPS/CSAT was low, besides

    # Derived from the rules above, once, for the hot path:
    history_ms: int = field(default=0, init=False)
    counted_categories: frozenset[Category] = field(
        default=frozenset(), init=False, repr=False, compare=False
    )
    caps_limiting: Mapping[tuple[str, Category, bool], tuple[CapRule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    detractor_limiting: Mapping[tuple[str, Category, bool], tuple[CapRule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    cap_classes: Mapping[str, frozenset[str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    journey_named: Mapping[str, Journey] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    listening: Mapping[str, tuple[Journey, ...]] = field(  # event type -> the journeys it moves
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "history_ms", history_for((*self.caps, *self.detractor_caps)))
        counted = frozenset(c for c, rule in self.categories.items() if rule.counts_toward_caps)
        object.__setattr__(self, "counted_categories", counted)
        object.__setattr__(self, "caps_limiting", caps_limiting(self.caps, self.categories))
        detractor = caps_limiting(self.detractor_caps, self.categories)
        object.__setattr__(self, "detractor_limiting", detractor)
        classes = cap_classes((*self.caps, *self.detractor_caps), counted)
        object.__setattr__(self, "cap_classes", classes)
        object.__setattr__(self, "journey_named", {j.name: j for j in self.journeys})
        object.__setattr__(self, "listening", listening(self.journeys))

    def caps_for(
        self, channel: str, category: Category, per_channel: bool, detractor: bool = False
    ) -> tuple[CapRule, ...]:
        """The caps that can hold back a send of `category` on `channel` (for a detractor,
        the stricter ones too)."""
        caps = self.caps_limiting[channel, category, per_channel]
        if detractor:
            return caps + self.detractor_limiting[channel, category, per_channel]
        return caps


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


def cap_classes(
    caps: tuple[CapRule, ...], counted: frozenset[Category]
) -> dict[str, frozenset[str]]:
    """Per cap, the send classes (channel/category) whose sends it counts."""
    return {
        cap.name: frozenset(
            send_class(channel, category.value)
            for channel in CHANNELS
            for category in Category
            if category in counted and cap.counts(channel, category)
        )
        for cap in caps
    }


def listening(journeys: tuple[Journey, ...]) -> dict[str, tuple[Journey, ...]]:
    events = {event for journey in journeys for event in journey.events}
    return {event: tuple(j for j in journeys if event in j.events) for event in sorted(events)}


def history_for(caps: tuple[CapRule, ...]) -> int:
    """How far back sends must be remembered for every cap to be checked."""
    calendar_span = {"day": 2 * DAY, "week": 8 * DAY, "month": 32 * DAY}
    spans = [cap.window_ms or calendar_span[cap.calendar or "day"] for cap in caps]
    # A send can sit up to a window after another one (out-of-order times), so keep two.
    return 2 * max(spans, default=0)
