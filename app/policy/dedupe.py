"""Deduplication and forgetting: one decision per message_id, one send per dedupe_key."""

from __future__ import annotations

from app.policy.history import Expiring
from app.policy.model import Candidate, CustomerState, evolve
from app.policy.rules import Policy


def already_decided(state: CustomerState, message_id: str) -> bool:
    return message_id in state.decided


def duplicate_of(state: CustomerState, candidate: Candidate, at: int, policy: Policy) -> str | None:
    """The message_id that already claimed this candidate's dedupe_key within the window."""
    key = candidate.dedupe_key
    entry = state.dedupe.get(key) if key else None
    if entry is None:
        return None
    claimed_at, message_id = entry
    if message_id == candidate.message_id or abs(at - claimed_at) >= policy.dedupe_window_ms:
        return None
    return message_id


def claimed(dedupe: Expiring[str], candidate: Candidate, at: int) -> Expiring[str]:
    """A sent or held candidate owns its dedupe_key for the dedupe window."""
    key = candidate.dedupe_key
    return dedupe.put(key, at, candidate.message_id) if key else dedupe


def unclaimed(dedupe: Expiring[str], candidate: Candidate) -> Expiring[str]:
    """A candidate that did not go out gives its dedupe_key back."""
    key = candidate.dedupe_key
    entry = dedupe.get(key) if key else None
    if key is None or entry is None or entry[1] != candidate.message_id:
        return dedupe
    return dedupe.remove(key)


def expire_history(state: CustomerState, now: int, policy: Policy) -> CustomerState:
    """Drop sends, decisions and dedupe keys no rule can still need, a day at a time: each
    collection finds what is stale without looking at every entry."""
    sends = state.sends.forget_before(now - policy.history_ms)
    decided = state.decided.forget_before(now - policy.dedupe_window_ms)
    dedupe = state.dedupe.forget_before(now - policy.dedupe_window_ms)
    if sends is state.sends and decided is state.decided and dedupe is state.dedupe:
        return state
    return evolve(state, sends=sends, decided=decided, dedupe=dedupe)
