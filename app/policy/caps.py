"""Frequency caps: rolling windows and calendar periods, per channel and per category.

A capped send is allowed only if, in every window that would contain it, the sends that count
stay within the limit. Checking every window (not only the one ending now) keeps the promise
"no customer exceeds a cap in any window" even when records arrive out of time order.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

from app.policy.localtime import calendar_period
from app.policy.model import Category, Send
from app.policy.rules import CapRule, Policy


def is_capped(category: Category, policy: Policy) -> bool:
    return not policy.categories[category].bypass_caps


def exceeded_caps(
    sends: Iterable[Send],
    at: int,
    channel: str,
    category: Category,
    tz: str,
    policy: Policy,
    per_channel: bool,
) -> list[str]:
    """Names of the caps a send at `at` would break; only per-channel caps, or only the others."""
    if not is_capped(category, policy):
        return []
    caps = [c for c in policy.caps if c.per_channel == per_channel and c.counts(channel, category)]
    if not caps:
        return []
    counted = [s for s in sends if policy.categories[s.category].counts_toward_caps]
    return [
        cap.name
        for cap in caps
        if len(counted) >= cap.limit  # fewer sends than the limit cannot fill any window
        and _would_exceed(cap, [s.at for s in counted if cap.counts(s.channel, s.category)], at, tz)
    ]


def _would_exceed(cap: CapRule, times: list[int], at: int, tz: str) -> bool:
    if cap.window_ms is not None:
        return _busiest_window(times, at, cap.window_ms) >= cap.limit
    period = calendar_period(at, tz, cap.calendar or "day")
    same_period = sum(1 for t in times if calendar_period(t, tz, cap.calendar or "day") == period)
    return same_period >= cap.limit


def _busiest_window(times: list[int], at: int, window: int) -> int:
    """The most existing sends in any window [x, x + window) that also contains `at`."""
    nearby = sorted(t for t in times if at - window < t < at + window)
    # The busiest such window starts at one of the sends before `at`, or at `at` itself.
    starts = [t for t in nearby if t <= at] + [at]
    return max(bisect_left(nearby, start + window) - bisect_left(nearby, start) for start in starts)
