"""What a channel gateway receives: the message, and what the customer just did."""

from __future__ import annotations

from app.policy.model import (
    DAY,
    MINUTE,
    Candidate,
    ContextItem,
    CustomerEvent,
    CustomerState,
    OutboundMessage,
)
from app.policy.rules import Policy


def outbound_message(
    state: CustomerState, candidate: Candidate, channel: str, at: int, policy: Policy
) -> OutboundMessage:
    recent = [e for e in state.recent if e.occurred_at <= at][-policy.limits.context_events :]
    context = tuple(ContextItem(e.type, e.occurred_at, e.channel, _detail(e)) for e in recent)
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
        context_summary=context_summary(context, at) + _progress(candidate, policy),
    )


def _progress(candidate: Candidate, policy: Policy) -> str:
    """For a journey's step: that its goal is not reached yet (it would have ended it)."""
    journey = policy.journey_named.get(candidate.journey) if candidate.journey else None
    return f"; has not yet: {journey.goal}" if journey is not None and journey.goal else ""


DETAILS = ("template", "offer", "product", "message_id")  # what an event may say it was about


def _detail(event: CustomerEvent) -> str | None:
    attributes = event.attributes
    if not attributes:
        return None
    for name in DETAILS:
        found = attributes.get(name)
        if found:
            return found
    return None


def context_summary(context: tuple[ContextItem, ...], at: int) -> str:
    """What the customer just did, newest first, for the human or template on the other end:
    "offer_clicked mortgage-7 1h ago; email_opened loan.next_steps (email) 3h ago"."""
    if not context:
        return "no recent activity"
    parts = [
        f"{item.type}{f' {item.detail}' if item.detail else ''}"
        f"{f' ({item.channel})' if item.channel else ''} {_ago(at - item.at)} ago"
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
