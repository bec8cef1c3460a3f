"""Quiet hours: non-urgent messages wait for the customer's local morning."""

from __future__ import annotations

from app.policy.localtime import next_local_clock, seconds_into_day
from app.policy.model import Candidate
from app.policy.rules import QuietHours


def is_quiet(at_ms: int, tz: str, quiet: QuietHours) -> bool:
    now = seconds_into_day(at_ms, tz)
    if quiet.start_s < quiet.end_s:
        return quiet.start_s <= now < quiet.end_s
    return now >= quiet.start_s or now < quiet.end_s


def held_until(candidate: Candidate, at_ms: int, tz: str, quiet: QuietHours | None) -> int | None:
    """When a candidate decided at `at_ms` may go out, or None if quiet hours do not hold it."""
    if quiet is None or candidate.urgency not in quiet.urgencies or not is_quiet(at_ms, tz, quiet):
        return None
    return next_local_clock(at_ms, tz, quiet.end_s)
