"""Deciding a candidate, and releasing held ones when their time comes.

Every function here is pure: state and time come in, a new state and the records to emit go out.
`now` is always a parameter; a candidate is decided as of its own time (see `decision_time`).
`logged` holds decisions already published (found on the output topics after a crash): a
candidate that has one takes it as its verdict instead of being decided a second time.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.policy.caps import cap_counts, exceeded_caps
from app.policy.channels import channel_order
from app.policy.consent import category_refusal, channel_refusal
from app.policy.dedupe import already_decided, duplicate_of, expire_history
from app.policy.engagement import by_engagement
from app.policy.holding import hold
from app.policy.model import (
    MINUTE,
    Applied,
    Candidate,
    CustomerProfile,
    CustomerState,
    Decision,
    Outcome,
    Pending,
)
from app.policy.rules import Policy
from app.policy.settle import settle, without_pending
from app.policy.verdict import Verdict, decision_of, verdict_of

MAX_LAG_MS = 15 * MINUTE
MAX_SKEW_MS = 1 * MINUTE
Logged = Mapping[str, Decision]  # message_id -> the decision already on the decisions topic
NOTHING_LOGGED: Logged = {}


def decision_time(record_time: int, clock: int) -> int:
    """Decide as of the record's own time, so a replay or a restart decides exactly alike.

    A record that reaches the worker much later than it was made (an outage), or that claims to
    come from the future (a skewed clock), is decided at the worker's clock instead.
    """
    if clock - MAX_LAG_MS <= record_time <= clock + MAX_SKEW_MS:
        return record_time
    return clock


def decide_candidate(
    state: CustomerState, candidate: Candidate, now: int, policy: Policy, logged: Logged
) -> Applied:
    """Decide one candidate: exactly one decision record, none if it was decided before.
    (What is due before it is released first, by timeline.decide.)"""
    if already_decided(state, candidate.message_id):
        return Applied(state, repeated=True)
    state = expire_history(state, now, policy)
    published = logged.get(candidate.message_id)
    if published is not None:
        current = without_pending(state, candidate.message_id)
        return settle(current, candidate, verdict_of(published), policy)
    if len(state.decided) >= policy.limits.max_messages_per_customer:
        return _over_limit(state, candidate, now, policy)
    return settle(state, candidate, evaluate(state, candidate, now, policy), policy)


def _over_limit(state: CustomerState, candidate: Candidate, now: int, policy: Policy) -> Applied:
    """A customer who has had max_messages_per_customer decided within the dedupe window (a
    flood, a loop upstream) gets no more: suppressed, and not remembered, so that the state,
    and the time to decide, stay bounded however many arrive."""
    verdict = Verdict(Outcome.SUPPRESSED, now, reasons=("customer_limit",))
    return Applied(state, (decision_of(candidate, verdict, policy),))


def release_held(state: CustomerState, held: Pending, policy: Policy, logged: Logged) -> Applied:
    """A held candidate's time has come: its final decision, as of that time."""
    current = without_pending(state, held.candidate.message_id)
    published = logged.get(held.candidate.message_id)
    if published is not None and published.outcome is not Outcome.DEFERRED:
        verdict = verdict_of(published)
    else:
        verdict = evaluate(current, held.candidate, held.due_at, policy, held.reason)
    return settle(current, held.candidate, verdict, policy)


def evaluate(
    state: CustomerState, candidate: Candidate, at: int, policy: Policy, released_from: str = ""
) -> Verdict:
    """What should happen to this candidate at `at`, without changing anything."""
    if candidate.expires_at is not None and candidate.expires_at <= at:
        return Verdict(Outcome.EXPIRED, candidate.expires_at, reasons=("expired",))
    profile = state.profile
    if profile is None:
        return Verdict(Outcome.SUPPRESSED, at, reasons=("unknown_customer",))
    duplicate = duplicate_of(state, candidate, at, policy)
    if duplicate is not None:
        return Verdict(Outcome.DEDUPLICATED, at, reasons=(f"duplicate_of:{duplicate}",))
    refusal = category_refusal(state, candidate.category)
    if refusal:
        return Verdict(Outcome.SUPPRESSED, at, reasons=(refusal,))
    eligible, refusals = _eligible_channels(state, profile, candidate, policy)
    if not eligible:
        return Verdict(Outcome.SUPPRESSED, at, reasons=tuple(refusals) or _no_channel(candidate))
    held = hold(state, candidate, at, policy, released_from)
    if held is not None:
        return held
    if policy.channel_rules.choice == "engagement":
        eligible, why = by_engagement(eligible, state.engagement, at, policy.channel_rules)
        refusals += [why] if why else []
    return _choose_within_caps(state, candidate, at, eligible, refusals, policy)


def _no_channel(candidate: Candidate) -> tuple[str, ...]:
    """A purpose the channel matrix has no row for (validation refuses an empty list else)."""
    return (f"no_channel:{candidate.purpose}",)


def _eligible_channels(
    state: CustomerState, profile: CustomerProfile, candidate: Candidate, policy: Policy
) -> tuple[list[str], list[str]]:
    eligible: list[str] = []
    refusals: list[str] = []
    for channel in channel_order(candidate, profile, policy):
        refusal = channel_refusal(state, profile, channel, candidate.category, policy)
        if refusal:
            refusals.append(refusal)
        else:
            eligible.append(channel)
    return eligible, refusals


def _choose_within_caps(
    state: CustomerState,
    candidate: Candidate,
    at: int,
    eligible: list[str],
    refusals: list[str],
    policy: Policy,
) -> Verdict:
    assert state.profile is not None
    tz, category = state.profile.timezone, candidate.category
    detractor = state.detractor_until > at
    blocked = exceeded_caps(state.sends, at, eligible[0], category, tz, policy, False, detractor)
    if blocked:
        seen = cap_counts(state.sends, at, eligible[0], category, tz, policy, detractor)
        reasons = tuple(f"cap:{name}" for name in blocked)
        return Verdict(Outcome.SUPPRESSED, at, reasons=reasons, caps=seen)
    for channel in eligible:
        blocked = exceeded_caps(state.sends, at, channel, category, tz, policy, True, detractor)
        if not blocked:
            seen = cap_counts(state.sends, at, channel, category, tz, policy, detractor)
            return Verdict(Outcome.SENT, at, channel=channel, reasons=tuple(refusals), caps=seen)
        refusals.extend(f"{channel}:cap:{name}" for name in blocked)
    seen = cap_counts(state.sends, at, eligible[-1], category, tz, policy, detractor)
    return Verdict(Outcome.SUPPRESSED, at, reasons=tuple(refusals), caps=seen)
