"""Fallback: a message that did not arrive goes out on the next channel it may, once per channel.

A `delivery_failed` or `bounced` event naming a sent message, or no `delivered` within the
channel's `fallback_after`, resends it as `<original>~<channel>` on the next of its channels that
is consented and reachable; its decision names the original (`fallback_of:m1`). The failed send
stops counting toward caps (it never reached the customer), and the fallback counts.
"""

from __future__ import annotations

from dataclasses import replace

from app.policy.consent import channel_refusal
from app.policy.decide import Logged, decide_candidate
from app.policy.fallback_rules import sent_now, with_sent, without_sent
from app.policy.model import Applied, CustomerState, Outcome, Sent, evolve
from app.policy.rules import Policy


def fall_back(state: CustomerState, sent: Sent, at: int, policy: Policy, logged: Logged) -> Applied:
    category = sent.candidate.category
    current = evolve(
        state,
        awaiting=without_sent(state, sent),
        sends=state.sends.remove(sent.channel, category.value, sent.at),
    )
    channel = _next_channel(current, sent, policy)
    if channel is None:
        return Applied(current)  # nowhere left to go: the failure is on record as an event
    resend = replace(
        sent.candidate,
        message_id=f"{sent.root}~{channel}",
        channels=(channel,),
        fallback_of=sent.root,
        created_at=at,
        dedupe_key=None,  # the original claimed it; the resend is the same message
    )
    applied = decide_candidate(current, resend, at, policy, logged)
    if not _sent(applied, resend.message_id):
        return applied
    tried = (*sent.tried, channel)
    if not [c for c in sent.order if c not in tried]:
        return applied
    next_sent = sent_now(resend, channel, at, tried, sent.order, policy)
    return replace(
        applied, state=evolve(applied.kept, awaiting=with_sent(applied.kept, next_sent, policy))
    )


def _next_channel(state: CustomerState, sent: Sent, policy: Policy) -> str | None:
    profile = state.profile
    if profile is None:
        return None
    for channel in sent.order:
        if channel in sent.tried:
            continue
        if channel_refusal(state, profile, channel, sent.candidate.category, policy) is None:
            return channel
    return None


def _sent(applied: Applied, message_id: str) -> bool:
    return any(d.message_id == message_id and d.outcome is Outcome.SENT for d in applied.decisions)
