"""Priorities: which candidate wins when several compete for the same moment."""

from __future__ import annotations

from app.policy.model import Candidate
from app.policy.rules import Policy


def rank(candidate: Candidate, policy: Policy) -> tuple[int, int, int, int, str]:
    """Sort key: smaller goes first (service before promo, personal before mass, then priority)."""
    return (
        policy.category_rank[candidate.category],
        policy.audience_rank[candidate.audience],
        -(candidate.priority or 0),
        candidate.created_at,
        candidate.message_id,
    )
