"""The one truth: how Tact decides, shared by the live worker and the offline replay.

Every function here is pure: state and time come in, a new state and the records to emit go out.
`now` is always a parameter; a candidate is decided as of its own time (see `decision_time`).
"""

from __future__ import annotations

from app.policy.bounds import MAX_REMEMBERED_ATTRIBUTES_BYTES, candidate_bytes, mapping_bytes
from app.policy.caps import exceeded_caps, is_capped
from app.policy.channels import channel_order
from app.policy.consent import category_refusal, channel_refusal, with_consent_event
from app.policy.dedupe import already_decided, claim, duplicate_of, forget_old, unclaim
from app.policy.model import (
    DAY,
    MINUTE,
    Candidate,
    ContextItem,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    Decision,
    OutboundMessage,
    Outcome,
    Pending,
    Step,
    Urgency,
    evolve,
)
from app.policy.priority import rank
from app.policy.quiet_hours import held_until
from app.policy.rules import Policy
from app.policy.valueclass import value

MAX_LAG_MS = 15 * MINUTE
MAX_SKEW_MS = 1 * MINUTE


def decision_time(record_time: int, clock: int) -> int:
    """Decide as of the record's own time, so a replay or a restart decides exactly alike.

    A record that reaches the worker much later than it was made (an outage), or that claims to
    come from the future (a skewed clock), is decided at the worker's clock instead.
    """
    if clock - MAX_LAG_MS <= record_time <= clock + MAX_SKEW_MS:
        return record_time
    return clock


@value
class Verdict:
    outcome: Outcome
    at: int
    channel: str | None = None
    reasons: tuple[str, ...] = ()
    release_at: int | None = None
    hold_reason: str = ""


def decide(state: CustomerState, candidate: Candidate, now: int, policy: Policy) -> Step:
    """Decide one candidate: exactly one decision record, none if it was decided before."""
    released = release_due(state, now, policy)
    if already_decided(released.state, candidate.message_id):
        return released
    state = forget_old(released.state, now, policy)
    if len(state.decided) >= policy.limits.max_messages_per_customer:
        return _chain(released, _over_limit(state, candidate, now, policy))
    verdict = evaluate(state, candidate, now, policy)
    settled = settle(state, candidate, verdict, policy)
    return _chain(released, settled) if released.decisions else settled


def _over_limit(state: CustomerState, candidate: Candidate, now: int, policy: Policy) -> Step:
    """A customer who has had max_messages_per_customer decided within the dedupe window (a
    flood, a loop upstream) gets no more: suppressed, and not remembered, so that the state,
    and the time to decide, stay bounded however many arrive."""
    verdict = Verdict(Outcome.SUPPRESSED, now, reasons=("customer_limit",))
    return Step(state, (_decision(candidate, verdict, policy),))


def on_event(state: CustomerState, event: CustomerEvent, now: int, policy: Policy) -> Step:
    """Remember a customer event; consent events change what later decisions may do."""
    released = release_due(state, now, policy)
    state = _record_event(released.state, event, policy)
    return Step(state, released.decisions, released.outbound)


def on_profile(state: CustomerState, profile: CustomerProfile) -> CustomerState:
    return evolve(state, profile=profile)


def forget(state: CustomerState, now: int, policy: Policy) -> tuple[Decision, ...]:
    """The customer is deleted: every candidate still held gets its final decision, cancelled."""
    return tuple(
        settle(
            state,
            held.candidate,
            Verdict(Outcome.CANCELLED, now, reasons=("customer_deleted",)),
            policy,
        ).decisions[0]
        for held in state.pending
    )


def release_due(state: CustomerState, now: int, policy: Policy) -> Step:
    """Decide every held candidate whose time has come, best first among equals."""
    if not state.pending:
        return Step(state)
    due = sorted(
        (p for p in state.pending if p.due_at <= now),
        key=lambda p: (p.due_at, rank(p.candidate, policy)),
    )
    step = Step(state)
    for held in due:
        state = _without_pending(step.state, held.candidate.message_id)
        verdict = evaluate(state, held.candidate, held.due_at, policy, released_from=held.reason)
        step = _chain(step, settle(state, held.candidate, verdict, policy))
    return step


def adopt(state: CustomerState, candidate: Candidate, logged: Decision, policy: Policy) -> Step:
    """Apply a decision that is already on the decisions topic (recovery after a crash)."""
    verdict = Verdict(
        outcome=logged.outcome,
        at=logged.decided_at,
        channel=logged.channel,
        reasons=logged.reasons,
        release_at=logged.release_at,
        hold_reason=_hold_reason(logged),
    )
    return settle(_without_pending(state, candidate.message_id), candidate, verdict, policy)


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
        return Verdict(Outcome.SUPPRESSED, at, reasons=tuple(refusals))
    hold = _hold(state, candidate, at, policy, released_from)
    if hold is not None:
        return hold
    return _choose_within_caps(state, candidate, at, eligible, refusals, policy)


def settle(state: CustomerState, candidate: Candidate, verdict: Verdict, policy: Policy) -> Step:
    """Record a verdict in the customer's state and build the records that announce it."""
    decision = _decision(candidate, verdict, policy)
    state = evolve(state, decided=state.decided.put(candidate.message_id, verdict.at, None))
    if verdict.outcome is Outcome.DEFERRED:
        assert verdict.release_at is not None
        held = Pending(candidate, verdict.release_at, verdict.hold_reason)
        state = evolve(claim(state, candidate, verdict.at), pending=(*state.pending, held))
        return Step(state, (decision,))
    if verdict.outcome is not Outcome.SENT or verdict.channel is None:
        return Step(unclaim(state, candidate), (decision,))
    sends = state.sends.add(verdict.channel, candidate.category.value, verdict.at)
    state = evolve(claim(state, candidate, verdict.at), sends=sends)
    return Step(
        state, (decision,), (_outbound(state, candidate, verdict.channel, verdict.at, policy),)
    )


def _decision(candidate: Candidate, verdict: Verdict, policy: Policy) -> Decision:
    return Decision(
        message_id=candidate.message_id,
        customer_id=candidate.customer_id,
        outcome=verdict.outcome,
        channel=verdict.channel,
        reasons=verdict.reasons,
        policy_version=policy.version,
        decided_at=verdict.at,
        category=candidate.category,
        release_at=verdict.release_at,
    )


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


def _hold(
    state: CustomerState, candidate: Candidate, at: int, policy: Policy, released_from: str
) -> Verdict | None:
    """Hold for quiet hours, or for arbitration, or None to decide now."""
    assert state.profile is not None
    release_at = held_until(candidate, at, state.profile.timezone, policy.quiet_hours)
    reason = "quiet_hours"
    if release_at is None and released_from != "arbitration" and _arbitrates(candidate, policy):
        release_at, reason = _arbitration_release(state, at, policy), "arbitration"
    if release_at is None:
        return None
    if _holds_too_much(state, candidate, policy):
        return Verdict(Outcome.SUPPRESSED, at, reasons=("pending_limit",))
    return Verdict(
        Outcome.DEFERRED, at, reasons=(reason,), release_at=release_at, hold_reason=reason
    )


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


def _choose_within_caps(
    state: CustomerState,
    candidate: Candidate,
    at: int,
    eligible: list[str],
    refusals: list[str],
    policy: Policy,
) -> Verdict:
    assert state.profile is not None
    tz = state.profile.timezone
    blocked = exceeded_caps(state.sends, at, eligible[0], candidate.category, tz, policy, False)
    if blocked:
        return Verdict(Outcome.SUPPRESSED, at, reasons=tuple(f"cap:{name}" for name in blocked))
    for channel in eligible:
        blocked = exceeded_caps(state.sends, at, channel, candidate.category, tz, policy, True)
        if not blocked:
            return Verdict(Outcome.SENT, at, channel=channel, reasons=tuple(refusals))
        refusals.extend(f"{channel}:cap:{name}" for name in blocked)
    return Verdict(Outcome.SUPPRESSED, at, reasons=tuple(refusals))


def _without_pending(state: CustomerState, message_id: str) -> CustomerState:
    if not any(p.candidate.message_id == message_id for p in state.pending):
        return state
    return evolve(
        state, pending=tuple(p for p in state.pending if p.candidate.message_id != message_id)
    )


def _hold_reason(logged: Decision) -> str:
    return logged.reasons[0] if logged.outcome is Outcome.DEFERRED and logged.reasons else ""


def _chain(first: Step, second: Step) -> Step:
    return Step(second.state, first.decisions + second.decisions, first.outbound + second.outbound)


def _outbound(
    state: CustomerState, candidate: Candidate, channel: str, at: int, policy: Policy
) -> OutboundMessage:
    recent = [e for e in state.recent if e.occurred_at <= at][-policy.limits.context_events :]
    context = tuple(ContextItem(e.type, e.occurred_at, e.channel) for e in recent)
    return OutboundMessage(
        message_id=candidate.message_id,
        customer_id=candidate.customer_id,
        channel=channel,
        template=candidate.template,
        payload=candidate.payload,
        category=candidate.category,
        sent_at=at,
        policy_version=policy.version,
        context=context,
        context_summary=context_summary(context, at),
    )


def context_summary(context: tuple[ContextItem, ...], at: int) -> str:
    """What the customer just did, newest first, for the human or template on the other end."""
    if not context:
        return "no recent activity"
    parts = [
        f"{item.type}{f' ({item.channel})' if item.channel else ''} {_ago(at - item.at)} ago"
        for item in reversed(context)
    ]
    return "; ".join(parts)


def _ago(ms: int) -> str:
    if ms < MINUTE:
        return f"{max(ms, 0) // 1000}s"
    if ms < 60 * MINUTE:
        return f"{ms // MINUTE}m"
    if ms < DAY:
        return f"{ms // (60 * MINUTE)}h"
    return f"{ms // DAY}d"


def _record_event(state: CustomerState, event: CustomerEvent, policy: Policy) -> CustomerState:
    consent = with_consent_event(state.consent, event)
    if consent is not state.consent:
        state = evolve(state, consent=consent)
    return _remember(state, event, policy.limits.context_events)


def _remember(state: CustomerState, event: CustomerEvent, keep: int) -> CustomerState:
    """The event joins the recent ones (context for gateways), without large attributes."""
    if not keep or any(e.event_id == event.event_id for e in state.recent):
        return state
    if mapping_bytes(dict(event.attributes)) > MAX_REMEMBERED_ATTRIBUTES_BYTES:
        event = CustomerEvent(
            event.event_id, event.customer_id, event.type, event.occurred_at, event.channel
        )
    recent = tuple(sorted((*state.recent, event), key=lambda e: e.occurred_at))
    return evolve(state, recent=recent[-keep:])
