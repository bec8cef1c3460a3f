"""Channel choice: the order in which a candidate's channels are tried."""

from __future__ import annotations

from app.policy.model import Candidate, CustomerProfile
from app.policy.rules import Policy


def channel_order(
    candidate: Candidate, profile: CustomerProfile, policy: Policy
) -> tuple[str, ...]:
    preferred = profile.preferred_channel
    if policy.honour_preferred_channel and preferred in candidate.channels:
        return (preferred, *(c for c in candidate.channels if c != preferred))
    return candidate.channels
