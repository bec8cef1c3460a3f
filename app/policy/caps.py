"""Frequency caps: rolling windows and calendar periods, per channel and per category.

A capped send is allowed only if, in every window that would contain it, the sends that count
stay within the limit. Checking every window (not only the one ending now) keeps the promise
"no customer exceeds a cap in any window" even when records arrive out of time order.

Sends are counted by bisecting the customer's SendLog, so a check costs O(log n) in the
customer's history; only a send that lands before others in a full window looks at each of them.
"""

from __future__ import annotations

from bisect import bisect_left

from app.policy.history import SendLog
from app.policy.localtime import calendar_bounds
from app.policy.model import CapCount, Category
from app.policy.rules import CapRule, Policy


def is_capped(category: Category, policy: Policy) -> bool:
    return not policy.categories[category].bypass_caps


def exceeded_caps(
    sends: SendLog,
    at: int,
    channel: str,
    category: Category,
    tz: str,
    policy: Policy,
    per_channel: bool,
    detractor: bool = False,
) -> list[str]:
    """Names of the caps a send at `at` would break; only per-channel caps, or only the others
    (for a detractor, the policy's stricter caps too)."""
    caps = policy.caps_for(channel, category, per_channel, detractor)
    if not caps:
        return []
    return [
        cap.name
        for cap in caps
        if len(sends) >= cap.limit  # fewer sends than the limit cannot fill any window
        and _would_exceed(cap, policy.cap_classes[cap.name], sends, at, tz)
    ]


def cap_counts(
    sends: SendLog,
    at: int,
    channel: str,
    category: Category,
    tz: str,
    policy: Policy,
    detractor: bool = False,
) -> tuple[CapCount, ...]:
    """Every cap that could hold back this send, with the sends it counts at `at`: in the
    rolling window that ends then, or in the calendar period that holds it."""
    caps = policy.caps_for(channel, category, False, detractor)
    caps += policy.caps_for(channel, category, True, detractor)
    out = []
    for cap in caps:
        start, end = counting_window(cap, at, tz)
        count = sends.count_between(policy.cap_classes[cap.name], start, end)
        out.append(CapCount(cap.name, count, cap.limit))
    return tuple(out)


def counting_window(cap: CapRule, at: int, tz: str) -> tuple[int, int]:
    """[start, end) of what the cap counts at `at`: the rolling window that ends then, or the
    calendar period (in the customer's zone) that holds it."""
    if cap.window_ms is not None:
        return at - cap.window_ms + 1, at + 1
    return calendar_bounds(at, tz, cap.calendar or "day")


def _would_exceed(cap: CapRule, classes: frozenset[str], sends: SendLog, at: int, tz: str) -> bool:
    if cap.window_ms is not None:
        return _busiest_window(sends, classes, at, cap.window_ms, cap.limit) >= cap.limit
    start, end = calendar_bounds(at, tz, cap.calendar or "day")
    return sends.count_between(classes, start, end) >= cap.limit


def _busiest_window(
    sends: SendLog, classes: frozenset[str], at: int, window: int, limit: int
) -> int:
    """The most existing sends in any window [x, x + window) that also contains `at`
    (exact up to `limit`: a count below it is all that is asked)."""
    start, end = at - window + 1, at + window
    around = sends.count_between(classes, start, end)
    if around < limit or not sends.count_between(classes, at + 1, end):
        return around  # too few to fill a window, or all of them fit in the one ending at `at`
    nearby = sends.times_between(classes, start, end)
    # The busiest such window starts at one of the sends before `at`, or at `at` itself.
    starts = [t for t in nearby if t <= at] + [at]
    return max(_count_from(nearby, s, window) for s in starts)


def _count_from(times: list[int], start: int, window: int) -> int:
    return bisect_left(times, start + window) - bisect_left(times, start)
