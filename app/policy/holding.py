"""Holding a candidate back: for quiet hours, for the best send time, for an arbitration round,
within the limits."""

from __future__ import annotations

from app.policy.bounds import candidate_bytes
from app.policy.caps import is_capped
from app.policy.localtime import local
from app.policy.model import Candidate, CustomerState, Outcome, Urgency
from app.policy.quiet_hours import held_until
from app.policy.rules import Policy
from app.policy.send_time import best_time
from app.policy.verdict import Verdict


def hold(
    state: CustomerState, candidate: Candidate, at: int, policy: Policy, released_from: str
) -> Verdict | None:
    """Hold for quiet hours, or for arbitration, or None to decide now."""
    assert state.profile is not None
    release_at = held_until(candidate, at, state.profile.timezone, policy.quiet_hours)
    reason = "quiet_hours"
    if release_at is None and released_from != "send_time":
        release_at, reason = best_time(state, candidate, at, policy), "send_time"
    if release_at is None and released_from != "arbitration" and _arbitrates(candidate, policy):
        release_at, reason = _arbitration_release(state, at, policy), "arbitration"
    if release_at is None:
        return None
    if _holds_too_much(state, candidate, policy):
        return Verdict(Outcome.SUPPRESSED, at, reasons=("pending_limit",))
    why = reason
    if reason == "send_time":
        why = f"send_time:{local(release_at, state.profile.timezone).hour}h"
    return Verdict(Outcome.DEFERRED, at, reasons=(why,), release_at=release_at, hold_reason=reason)


def _holds_too_much(state: CustomerState, candidate: Candidate, policy: Policy) -> bool:
    limits = policy.limits
    if len(state.pending) >= limits.max_pending_per_customer:
        return True
    held = sum(candidate_bytes(p.candidate) for p in state.pending)
    return held + candidate_bytes(candidate) > limits.max_held_bytes


def _arbitrates(candidate: Candidate, policy: Policy) -> bool:
    return (
        policy.arbitration_window_ms > 0
        and candidate.urgency is not Urgency.IMMEDIATE
        and is_capped(candidate.category, policy)
    )


def _arbitration_release(state: CustomerState, at: int, policy: Policy) -> int:
    """Join the customer's open arbitration round, or open one: rivals are then ranked together."""
    open_rounds = [
        p.release_at for p in state.pending if p.reason == "arbitration" and p.release_at > at
    ]
    return min(open_rounds, default=at + policy.arbitration_window_ms)
