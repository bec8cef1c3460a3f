"""Consent and reachability: what rules a channel, or a whole category, out."""

from __future__ import annotations

from app.policy.model import Category, CustomerProfile, CustomerState
from app.policy.rules import Policy


def category_refusal(state: CustomerState, category: Category) -> str | None:
    if category in state.opted_out_categories:  # a StrEnum member equals its text
        return f"opted_out:{category.value}"
    return None


def channel_refusal(
    profile: CustomerProfile, channel: str, category: Category, policy: Policy
) -> str | None:
    """Why this channel cannot carry this category to this customer, or None if it can."""
    if policy.categories[category].requires_consent and not profile.consents.get(channel, False):
        return f"{channel}:no_consent"
    if not profile.reachable.get(channel, False):
        return f"{channel}:unreachable"
    return None
