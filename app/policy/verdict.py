"""A verdict on one candidate, and the decision record that announces it."""

from __future__ import annotations

from app.policy.model import Candidate, CapCount, Decision, Outcome
from app.policy.rules import Policy
from app.policy.valueclass import value


@value
class Verdict:
    outcome: Outcome
    at: int
    channel: str | None = None
    reasons: tuple[str, ...] = ()
    release_at: int | None = None
    hold_reason: str = ""
    caps: tuple[CapCount, ...] = ()


def decision_of(candidate: Candidate, verdict: Verdict, policy: Policy) -> Decision:
    reasons = verdict.reasons
    if candidate.fallback_of:
        reasons = (f"fallback_of:{candidate.fallback_of}", *reasons)
    sent = verdict.outcome is Outcome.SENT and verdict.channel is not None
    return Decision(
        message_id=candidate.message_id,
        customer_id=candidate.customer_id,
        outcome=verdict.outcome,
        channel=verdict.channel,
        reasons=reasons,
        policy_version=policy.version,
        decided_at=verdict.at,
        category=candidate.category,
        release_at=verdict.release_at,
        journey=candidate.journey or None,
        step=candidate.step or None,
        cost=policy.channel_rules.cost.get(verdict.channel or "") if sent else None,
        caps=verdict.caps,
    )


def verdict_of(logged: Decision) -> Verdict:
    """The verdict a decision already published stands for (recovery after a crash)."""
    deferred = logged.outcome is Outcome.DEFERRED
    reasons = tuple(r for r in logged.reasons if not r.startswith("fallback_of:"))
    return Verdict(
        outcome=logged.outcome,
        at=logged.decided_at,
        channel=logged.channel,
        reasons=reasons,
        release_at=logged.release_at,
        hold_reason=reasons[0] if deferred and reasons else "",
        caps=logged.caps,
    )
