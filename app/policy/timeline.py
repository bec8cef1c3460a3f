"""What is due by now, in time order: held candidates and journey steps (and their deadlines).

Every input first releases what fell due before its own time, as the worker's timer would have
done, so the worker and a replay decide alike whenever the timer happened to run.
"""

from __future__ import annotations

from collections.abc import Callable

from app.policy.decide import Logged, decide_candidate, release_held
from app.policy.journeys import fire_due_step
from app.policy.model import Applied, Candidate, CustomerState
from app.policy.priority import rank
from app.policy.rules import Policy

MAX_RELEASES = 10_000  # per call; every release removes a held candidate or moves a journey on


def release_due(state: CustomerState, now: int, policy: Policy, logged: Logged) -> Applied:
    """Everything due by `now`, earliest first (held candidates best first among equals)."""
    applied = Applied(state)
    if not state.pending and not state.journeys:
        return applied  # the common case: nothing held, no journey
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
    held = [p for p in state.pending if p.due_at <= now]
    instances = [i for i in state.journeys if i.next_time <= now]
    first_held = min(held, key=lambda p: (p.due_at, rank(p.candidate, policy)), default=None)
    first_step = min(instances, key=lambda i: (i.next_time, i.journey, i.key), default=None)
    if first_held is not None and (first_step is None or first_held.due_at <= first_step.next_time):
        return lambda: release_held(state, first_held, policy, logged)
    if first_step is not None:
        return lambda: fire_due_step(state, first_step, policy, logged)
    return None
