"""What is due by now, in time order: held candidates and journey steps (and their deadlines).

Every input first releases what fell due before its own time, as the worker's timer would have
done, so the worker and a replay decide alike whenever the timer happened to run.
"""

from __future__ import annotations

from collections.abc import Callable

from app.policy.decide import Logged, decide_candidate, release_held
from app.policy.fallback import fall_back
from app.policy.journeys import fire_due_step
from app.policy.model import Applied, Candidate, CustomerState, Instance, Sent
from app.policy.priority import rank
from app.policy.rules import Policy

MAX_RELEASES = 10_000  # per call; every release removes a held candidate or moves a journey on


def release_due(state: CustomerState, now: int, policy: Policy, logged: Logged) -> Applied:
    """Everything due by `now`, earliest first (held candidates best first among equals)."""
    applied = Applied(state)
    if not state.pending and not state.journeys and not state.awaiting:
        return applied  # the common case: nothing held, no journey, no delivery awaited
    due = state.next_due
    if due is None or due > now:
        return applied  # sends awaiting delivery without a check, or nothing due yet
    for _ in range(MAX_RELEASES):
        release = _earliest(applied.kept, now, policy, logged)
        if release is None:
            break
        applied = applied.then(release())
    return applied


def decide(
    state: CustomerState, candidate: Candidate, now: int, policy: Policy, logged: Logged
) -> Applied:
    """What fell due before the candidate, then the candidate."""
    released = release_due(state, now, policy, logged)
    return released.then(decide_candidate(released.kept, candidate, now, policy, logged))


def _earliest(
    state: CustomerState, now: int, policy: Policy, logged: Logged
) -> Callable[[], Applied] | None:
    """The first thing due: a held candidate (best first among equals), a journey's step or
    deadline, or a delivery check (no `delivered` within the channel's fallback_after)."""
    due: list[tuple[int, int, str, Callable[[], Applied]]] = []
    held = [p for p in state.pending if p.due_at <= now]
    if held:
        first = min(held, key=lambda p: (p.due_at, rank(p.candidate, policy)))
        due.append((first.due_at, 0, "", lambda: release_held(state, first, policy, logged)))
    for i in state.journeys:
        if i.next_time <= now:
            step = i  # bound now: the lambda runs after the loop
            due.append((i.next_time, 1, f"{i.journey}/{i.key}", _fire(state, step, policy, logged)))
    for s in state.awaiting:
        if s.check_at is not None and s.check_at <= now:
            due.append((s.check_at, 2, s.candidate.message_id, _check(state, s, policy, logged)))
    return min(due, key=lambda d: d[:3])[3] if due else None


def _fire(
    state: CustomerState, instance: Instance, policy: Policy, logged: Logged
) -> Callable[[], Applied]:
    return lambda: fire_due_step(state, instance, policy, logged)


def _check(
    state: CustomerState, sent: Sent, policy: Policy, logged: Logged
) -> Callable[[], Applied]:
    assert sent.check_at is not None
    at = sent.check_at
    return lambda: fall_back(state, sent, at, policy, logged)
