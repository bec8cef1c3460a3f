"""Which sends stay open to a fallback, and for how long: kept small and bounded."""

from __future__ import annotations

from app.policy.bounds import candidate_bytes
from app.policy.channels import listed_channels
from app.policy.model import Candidate, CustomerState, Sent
from app.policy.rules import Policy


def awaiting_delivery(
    state: CustomerState, candidate: Candidate, channel: str, at: int, policy: Policy
) -> tuple[Sent, ...]:
    """The sends awaiting delivery once this one went out: with it, if it has a channel left
    to fall back to (a fallback's own resend is added by fallback.py, which knows its chain)."""
    rules = policy.channel_rules
    if (
        candidate.fallback_of
        or state.profile is None
        or not (rules.fallback or rules.fallback_after)
    ):
        return state.awaiting
    order = listed_channels(candidate, state.profile, policy)
    if len(order) < 2:
        return state.awaiting
    return with_sent(state, sent_now(candidate, channel, at, (channel,), order, policy), policy)


def sent_now(
    candidate: Candidate,
    channel: str,
    at: int,
    tried: tuple[str, ...],
    order: tuple[str, ...],
    policy: Policy,
) -> Sent:
    after = policy.channel_rules.fallback_after.get(channel)
    return Sent(candidate, channel, at, None if after is None else at + after, tried, order)


def with_sent(state: CustomerState, sent: Sent, policy: Policy) -> tuple[Sent, ...]:
    """The open sends with this one, the oldest dropped first beyond max_awaiting, and those
    past the keep horizon once the oldest is (they are kept in the order they were sent). A send
    too large for its share of limits.max_held_bytes is not kept (no fallback for it), so that
    together they stay within it without adding them up."""
    rules = policy.channel_rules
    share = policy.limits.max_held_bytes // rules.max_awaiting
    if candidate_bytes(sent.candidate) + SENT_BYTES > share:
        return state.awaiting
    horizon = sent.at - rules.fallback_keep_ms
    awaiting = state.awaiting
    if awaiting and awaiting[0].at < horizon:
        awaiting = tuple(s for s in awaiting if s.at >= horizon)
    if len(awaiting) >= rules.max_awaiting:
        awaiting = awaiting[len(awaiting) - rules.max_awaiting + 1 :]
    return (*awaiting, sent)


SENT_BYTES = 64  # a send's channel, times and channel lists, beside its candidate


def without_sent(state: CustomerState, sent: Sent) -> tuple[Sent, ...]:
    return tuple(s for s in state.awaiting if s is not sent)


def sent_named(state: CustomerState, message_id: str) -> Sent | None:
    return next((s for s in state.awaiting if s.candidate.message_id == message_id), None)
