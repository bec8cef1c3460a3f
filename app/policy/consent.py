"""Consent and reachability: what rules a channel, or a whole category, out.

Consent is the customer's word over time. Every (un)subscribe event is a word on one scope:
  "email"           the channel (event with a channel, no category)
  "category:promo"  the category on every channel (event with attributes.category, no channel)
  "email/promo"     the category on that channel (event with both)
Per scope the latest word by the event's own time wins (ties by event_id), whatever order the
events arrive in. The profile from upstream is never edited by events, so a profile update cannot
undo an unsubscribe.

A channel may carry a category when, in this order:
  1. the customer's latest word on "channel/category", else on "channel", says yes; else
  2. the profile's consents say so for the channel; else
  3. the category's default: `opt_out` (yes unless the customer said no) or `opt_in` (no).
A complaint on a channel is a no on "channel/promo" (feedback.py).
And no category gate: the latest word on "category:<c>" must not be a no.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.policy.model import Category, ConsentWord, CustomerEvent, CustomerProfile, CustomerState
from app.policy.rules import Policy

OPT_OUT_EVENTS = frozenset({"unsubscribed"})
OPT_IN_EVENTS = frozenset({"resubscribed", "subscribed"})


def consent_scope(event: CustomerEvent) -> str | None:
    """The scope an (un)subscribe event speaks for, or None if it is not one."""
    if event.type not in OPT_OUT_EVENTS and event.type not in OPT_IN_EVENTS:
        return None
    category = event.attributes.get("category")
    if category and event.channel:
        return f"{event.channel}/{category}"
    if category:
        return f"category:{category}"
    return event.channel or None


def with_consent_event(
    ledger: Mapping[str, ConsentWord], event: CustomerEvent
) -> Mapping[str, ConsentWord]:
    """The ledger with this event's word, if it is the latest on its scope."""
    scope = consent_scope(event)
    if scope is None:
        return ledger
    return with_word(
        ledger, scope, ConsentWord(event.occurred_at, event.event_id, event.type in OPT_IN_EVENTS)
    )


def with_word(
    ledger: Mapping[str, ConsentWord], scope: str, word: ConsentWord
) -> Mapping[str, ConsentWord]:
    """The ledger with `word` on `scope`, if it is the latest there."""
    current = ledger.get(scope)
    if current is not None and not word.is_later_than(current):
        return ledger
    return {**ledger, scope: word}


def category_refusal(state: CustomerState, category: Category) -> str | None:
    if not state.consent:
        return None
    word = state.consent.get(f"category:{category.value}")
    if word is not None and not word.subscribed:
        return f"opted_out:{category.value}"
    return None


def channel_refusal(
    state: CustomerState, profile: CustomerProfile, channel: str, category: Category, policy: Policy
) -> str | None:
    """Why this channel cannot carry this category to this customer, or None if it can."""
    rule = policy.categories[category]
    if rule.requires_consent and not _consents(state, profile, channel, category, rule.opt_in):
        word = state.consent.get(f"{channel}/{category.value}") if state.consent else None
        if word is not None and word.source == "complaint":
            return f"complaint:{channel}"
        return f"{channel}:no_consent"
    if not is_reachable(profile, channel, policy):
        return f"{channel}:unreachable"
    return None


def is_reachable(profile: CustomerProfile, channel: str, policy: Policy) -> bool:
    """The profile's word, else the policy's: email and messenger are assumed reachable by
    default (the gateway holds the address and reports a bounce), push, sms and call are not
    (a token or a number must be known)."""
    stated = profile.reachable.get(channel)
    return channel in policy.assume_reachable if stated is None else stated


def _consents(
    state: CustomerState, profile: CustomerProfile, channel: str, category: Category, opt_in: bool
) -> bool:
    if state.consent:  # most customers have never said a word: skip building the scopes
        word = state.consent.get(f"{channel}/{category.value}") or state.consent.get(channel)
        if word is not None:
            return word.subscribed
    stated = profile.consents.get(channel)
    return (not opt_in) if stated is None else stated
