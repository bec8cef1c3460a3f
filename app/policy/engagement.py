"""Engagement: what each customer really reads, per channel, as decayed scores.

A feedback event (opened, clicked, ignored, bounced...) adds its weight to its channel's score;
a score halves every half-life. Scores only depend on the events and their times, so a replay
gives the same order of channels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from app.policy.channel_rules import ChannelRules
from app.policy.model import Score

K = TypeVar("K", str, int)


def score_at(score: Score | None, at: int, half_life_ms: int) -> float:
    if score is None:
        return 0.0
    return float(score.value * 0.5 ** (max(at - score.at, 0) / half_life_ms))


def with_weight(
    scores: Mapping[K, Score], key: K, weight: float, at: int, half_life_ms: int
) -> Mapping[K, Score]:
    """The scores with `weight` added to `key`'s (a channel, a local hour) as of `at` (an older
    event counts as much as it would have decayed since)."""
    current = scores.get(key)
    if current is None:
        score = Score(weight, at)
    elif at >= current.at:
        score = Score(score_at(current, at, half_life_ms) + weight, at)
    else:
        score = Score(
            current.value + weight * 0.5 ** ((current.at - at) / half_life_ms), current.at
        )
    return {**scores, key: score}


def by_engagement(
    channels: list[str], engagement: Mapping[str, Score], at: int, rules: ChannelRules
) -> tuple[list[str], str]:
    """The channels, most engaging first (ties: cheaper first if the policy says so, then as
    given), and the reason when that changed which channel leads."""
    if len(channels) < 2:
        return channels, ""

    scores = {c: score_at(engagement.get(c), at, rules.half_life_ms) for c in channels}

    def key(item: tuple[int, str]) -> tuple[float, float, int]:
        index, channel = item
        cost = rules.cost.get(channel, 0.0) if rules.prefer_cheaper else 0.0
        return (-scores[channel], cost, index)

    ordered = [c for _, c in sorted(enumerate(channels), key=key)]
    first, listed = ordered[0], channels[0]
    if first == listed:
        return ordered, ""
    why = "engagement" if scores[first] > scores[listed] else "cost"
    return ordered, f"channel:{why}:{first}>{listed}"
