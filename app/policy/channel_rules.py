"""The policy's channel rules: the matrix, engagement, cost, fallback, feedback and signals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.policy.model import DAY, MINUTE, Urgency


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """purpose (x urgency) (x segment) -> channels in order; a row without urgency or segment
    is for every one, and the most specific row that matches wins."""

    purpose: str
    channels: tuple[str, ...]
    urgency: Urgency | None = None
    segment: str | None = None

    def matches(self, purpose: str, urgency: Urgency, segment: str | None) -> bool:
        return (
            self.purpose == purpose
            and self.urgency in (None, urgency)
            and self.segment in (None, segment)
        )

    @property
    def specificity(self) -> int:
        return (2 if self.segment is not None else 0) + (1 if self.urgency is not None else 0)


# What each feedback event adds to its channel's engagement score (the policy may change them).
ENGAGEMENT_WEIGHTS: Mapping[str, float] = {
    "delivered": 0.0,
    "opened": 1.0,
    "clicked": 2.0,
    "ignored": -0.5,
    "delivery_failed": -1.0,
    "bounced": -2.0,
}
DELIVERED_EVENTS = frozenset({"delivered", "opened", "clicked"})  # it arrived
FAILED_EVENTS = frozenset({"delivery_failed", "bounced"})  # it did not: fall back


@dataclass(frozen=True, slots=True)
class ChannelRules:
    # "matrix": the candidate's (or the matrix's) order; "engagement": by the customer's scores
    choice: str = "matrix"
    prefer_cheaper: bool = False  # equal scores: the cheaper channel first
    matrix: tuple[MatrixRow, ...] = ()
    cost: Mapping[str, float] = field(default_factory=dict)  # per send, by channel
    fallback: bool = True  # a delivery_failed or bounced send goes out on the next channel
    fallback_after: Mapping[str, int] = field(default_factory=dict)  # no `delivered` by then
    fallback_keep_ms: int = 3 * DAY  # how long a send stays open to a fallback at most
    max_awaiting: int = 20  # sends per customer kept for a fallback; the oldest go first
    half_life_ms: int = 30 * DAY
    send_time_horizon_ms: int = DAY  # how far ahead `send_time = "engagement"` looks
    weights: Mapping[str, float] = field(default_factory=lambda: dict(ENGAGEMENT_WEIGHTS))
    switch_window_ms: int = 10 * MINUTE
    switch_penalty: float = 0.0  # subtracted from the score of the channel the customer left
    detractor_nps: float = 6  # at most this NPS score: a detractor
    detractor_csat: float = 2
    detractor_for_ms: int = 30 * DAY
    complaint_opts_out: bool = True  # a complaint on a channel: no more promo on it

    def row_for(self, purpose: str, urgency: Urgency, segment: str | None) -> MatrixRow | None:
        rows = [r for r in self.matrix if r.matches(purpose, urgency, segment)]
        return max(rows, key=lambda r: r.specificity, default=None)  # ties: the first written
