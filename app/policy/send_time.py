"""The best time: a candidate of a category with `send_time = "engagement"` waits for the local
hour this customer opens and clicks most, within the policy's horizon.

Opens and clicks build a per-customer profile of the local hours they engage at, decayed like the
engagement scores. The hold goes through the same path as quiet hours (reason `send_time:19h`);
an immediate candidate is never held, and no hour inside quiet hours is chosen for one they hold.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.policy.engagement import score_at, with_weight
from app.policy.localtime import local
from app.policy.model import HOUR, MINUTE, SECOND, Candidate, CustomerState, Score, Urgency
from app.policy.quiet_hours import is_quiet
from app.policy.rules import Policy

ENGAGED = frozenset({"opened", "clicked"})  # what makes an hour a good one


def with_engaged_hour(
    hours: Mapping[int, Score], at: int, tz: str, weight: float, half_life_ms: int
) -> Mapping[int, Score]:
    return with_weight(hours, local(at, tz).hour, weight, at, half_life_ms)


def best_time(state: CustomerState, candidate: Candidate, at: int, policy: Policy) -> int | None:
    """When to send: the start of the customer's best local hour within the horizon, or None
    to send now (the best hour is this one, or nothing is known)."""
    rule = policy.categories[candidate.category]
    if rule.send_time != "engagement" or candidate.urgency is Urgency.IMMEDIATE:
        return None
    if not state.hours or state.profile is None:
        return None
    tz, rules = state.profile.timezone, policy.channel_rules
    quiet = policy.quiet_hours
    held_by_quiet = quiet is not None and candidate.urgency in quiet.urgencies
    best, best_score = None, 0.0
    for k in range(rules.send_time_horizon_ms // HOUR):
        start = at if k == 0 else _hour_start(at + k * HOUR, tz)
        if held_by_quiet and quiet is not None and is_quiet(start, tz, quiet):
            continue
        score = score_at(state.hours.get(local(start, tz).hour), at, rules.half_life_ms)
        if score > best_score:
            best, best_score = (None if k == 0 else start), score
    return best


def _hour_start(at: int, tz: str) -> int:
    moment = local(at, tz)
    return at - moment.minute * MINUTE - moment.second * SECOND - moment.microsecond // 1000
