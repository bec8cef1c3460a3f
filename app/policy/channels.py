"""Channel choice: which channels a candidate may go out on, and in which order they are tried.

A candidate lists its channels, or names a `purpose` and leaves the list empty: the policy's
channel matrix then gives them (purpose x urgency x the customer's segment). The customer's
preferred channel may go first; with `channel_choice = "engagement"` the channels the customer
engages with most go first (engagement.py).
"""

from __future__ import annotations

from app.policy.model import Candidate, CustomerProfile
from app.policy.rules import Policy


def listed_channels(
    candidate: Candidate, profile: CustomerProfile, policy: Policy
) -> tuple[str, ...]:
    """The candidate's own channels, else its purpose's row of the matrix (else none)."""
    if candidate.channels or not candidate.purpose:
        return candidate.channels
    row = policy.channel_rules.row_for(candidate.purpose, candidate.urgency, profile.segment)
    return () if row is None else row.channels


def channel_order(
    candidate: Candidate, profile: CustomerProfile, policy: Policy
) -> tuple[str, ...]:
    channels = listed_channels(candidate, profile, policy)
    preferred = profile.preferred_channel
    if policy.honour_preferred_channel and preferred in channels:
        return (preferred, *(c for c in channels if c != preferred))
    return channels
