"""Frequency caps: rolling windows and calendar periods, per channel and per category.

A capped send is allowed only if, in every window that would contain it, the sends that count
stay within the limit. Checking every window (not only the one ending now) keeps the promise
"no customer exceeds a cap in any window" even when records arrive out of time order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from app.policy.localtime import calendar_period
from app.policy.model import Category, Send
from app.policy.rules import CapRule, Policy


def is_capped(category: Category, policy: Policy) -> bool:
    return not policy.categories[category].bypass_caps


def exceeded_caps(
    sends: tuple[Send, ...],
    at: int,
    channel: str,
    category: Category,
    tz: str,
    policy: Policy,
    per_channel: bool,
) -> list[str]:
    """Names of the caps a send at `at` would break; only per-channel caps, or only the others."""
    caps = policy.caps_for(channel, category, per_channel)
    if not caps:
        return []
    counted = [s for s in sends if s.category in policy.counted_categories]
    all_times = [s.at for s in counted]
    return [
        cap.name
        for cap in caps
        if len(counted) >= cap.limit  # fewer sends than the limit cannot fill any window
        and _would_exceed(cap, _times_counted(cap, counted, all_times), at, tz)
    ]


def _times_counted(cap: CapRule, counted: list[Send], all_times: list[int]) -> list[int]:
    if not cap.channels and not cap.categories:
        return all_times
    return [s.at for s in counted if cap.counts(s.channel, s.category)]


def _would_exceed(cap: CapRule, times: list[int], at: int, tz: str) -> bool:
    if cap.window_ms is not None:
        return _busiest_window(times, at, cap.window_ms) >= cap.limit
    period = calendar_period(at, tz, cap.calendar or "day")
    same_period = sum(1 for t in times if calendar_period(t, tz, cap.calendar or "day") == period)
    return same_period >= cap.limit


def _busiest_window(times: list[int], at: int, window: int) -> int:
    """The most existing sends in any window [x, x + window) that also contains `at`.

    `times` is in order, as a customer's sends are kept."""
    nearby = times[bisect_right(times, at - window) : bisect_left(times, at + window)]
    if not nearby or nearby[-1] <= at:
        return len(nearby)  # all of them fit in the window that starts at the first
    # The busiest such window starts at one of the sends before `at`, or at `at` itself.
    starts = [t for t in nearby if t <= at] + [at]
    return max(bisect_left(nearby, start + window) - bisect_left(nearby, start) for start in starts)
