"""Local time in a customer's IANA time zone, for quiet hours and calendar caps."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def is_valid_timezone(name: str) -> bool:
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def local(at_ms: int, tz: str) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, zone(tz))


def seconds_into_day(at_ms: int, tz: str) -> int:
    moment = local(at_ms, tz)
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def next_local_clock(at_ms: int, tz: str, seconds: int) -> int:
    """The first moment after `at_ms` when the local clock shows `seconds` past midnight."""
    today = local(at_ms, tz).date()
    for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
        candidate = _at_local(day, seconds, tz)
        if candidate > at_ms:
            return candidate
    raise AssertionError("a local clock time recurs within two days")


def _at_local(day: date, seconds: int, tz: str) -> int:
    clock = time(seconds // 3600, seconds // 60 % 60, seconds % 60)
    return int(datetime.combine(day, clock, tzinfo=zone(tz)).timestamp() * 1000)


def calendar_bounds(at_ms: int, tz: str, period: str) -> tuple[int, int]:
    """The local day, ISO week (from Monday) or month that `at_ms` falls in: [start, end) in ms."""
    day = local(at_ms, tz).date()
    if period == "day":
        first, following = day, day + timedelta(days=1)
    elif period == "week":
        first = day - timedelta(days=day.weekday())
        following = first + timedelta(days=7)
    else:
        first = day.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    return _at_local(first, 0, tz), _at_local(following, 0, tz)


def calendar_period(at_ms: int, tz: str, period: str) -> tuple[int, int]:
    """Which local day, ISO week or month `at_ms` falls in, as a comparable key."""
    moment = local(at_ms, tz)
    if period == "day":
        return moment.year, moment.timetuple().tm_yday
    if period == "week":
        iso = moment.isocalendar()
        return iso.year, iso.week
    return moment.year, moment.month


def local_clock_on(at_ms: int, tz: str, day_offset: int, seconds: int) -> int:
    """`seconds` after local midnight, `day_offset` days after the local day of `at_ms`."""
    day = local(at_ms, tz).date() + timedelta(days=day_offset)
    return _at_local(day, seconds, tz)
