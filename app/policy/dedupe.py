"""Deduplication and forgetting: one decision per message_id, one send per dedupe_key."""

from __future__ import annotations

from app.policy.model import Candidate, CustomerState, evolve
from app.policy.rules import Policy


def already_decided(state: CustomerState, message_id: str) -> bool:
    return message_id in state.decided


def duplicate_of(state: CustomerState, candidate: Candidate, at: int, policy: Policy) -> str | None:
    """The message_id that already claimed this candidate's dedupe_key within the window."""
    key = candidate.dedupe_key
    entry = state.dedupe.get(key) if key else None
    if entry is None or entry.message_id == candidate.message_id:
        return None
    if abs(at - entry.accepted_at) >= policy.dedupe_window_ms:
        return None
    return entry.message_id


def forget_old(state: CustomerState, now: int, policy: Policy) -> CustomerState:
    """Drop sends, decisions and dedupe keys no rule can still need."""
    send_horizon = now - policy.history_ms
    dedupe_horizon = now - policy.dedupe_window_ms
    stale_sends = state.sends and state.sends[0].at < send_horizon
    stale_decided = state.decided and min(state.decided.values()) < dedupe_horizon
    stale_keys = any(e.accepted_at < dedupe_horizon for e in state.dedupe.values())
    if not (stale_sends or stale_decided or stale_keys):
        return state
    return evolve(
        state,
        sends=tuple(s for s in state.sends if s.at >= send_horizon),
        decided={m: at for m, at in state.decided.items() if at >= dedupe_horizon},
        dedupe={k: e for k, e in state.dedupe.items() if e.accepted_at >= dedupe_horizon},
    )
