"""Journeys: an event starts an instance, its steps become candidates in turn, and an exit, the
goal or the deadline ends it at once.

An instance lives in its customer's own state, so the event that ends it and a step that falls
due are ordered in one place: an exit read before a step's time always wins. A due step becomes
a candidate with a deterministic message_id and is decided like any other (dedupe, consent,
caps, quiet hours); one already held when the instance ends is cancelled, naming the event.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from app.policy.decide import Logged, decide_candidate
from app.policy.journey_rules import Journey, JourneyStep, StepTiming
from app.policy.localtime import local_clock_on
from app.policy.model import (
    Applied,
    Candidate,
    CustomerEvent,
    CustomerState,
    Instance,
    Outcome,
    Transition,
    evolve,
)
from app.policy.rules import Policy
from app.policy.settle import settle, without_pending
from app.policy.verdict import Verdict

MAX_KEY_BYTES = 48  # an instance key is part of its steps' message ids (see step_message_id)


def step_message_id(journey: str, instance: Instance, step: str) -> str:
    """Unique per instance (its trigger's event_id), the same on every replay."""
    return f"{journey}/{instance.key}/{step}@{instance.entry}"


def on_journey_event(
    state: CustomerState, event: CustomerEvent, at: int, policy: Policy, logged: Logged
) -> Applied:
    """What an event does to the customer's journeys: end, go on, note, start, in that order."""
    applied = Applied(state)
    for journey in policy.listening.get(event.type, ()):
        applied = applied.then(_one_journey(applied.kept, journey, event, at, policy, logged))
    return applied


def _one_journey(
    state: CustomerState,
    journey: Journey,
    event: CustomerEvent,
    at: int,
    policy: Policy,
    logged: Logged,
) -> Applied:
    applied = Applied(state)
    for instance in _addressed(state, journey, event):
        if event.type == journey.goal or event.type in journey.exit_on:
            kind = "converted" if event.type == journey.goal else "exited"
            why = f"journey_{'goal' if kind == 'converted' else 'exit'}:{event.type}"
            value = _value(event, journey) if kind == "converted" else None
            applied = applied.then(end(applied.kept, instance, kind, why, at, policy, value))
        else:
            applied = applied.then(_go_on(applied.kept, journey, instance, event, at))
    if event.type == journey.trigger:
        applied = applied.then(_enter(applied.kept, journey, event, at, policy))
    return applied


def _addressed(state: CustomerState, journey: Journey, event: CustomerEvent) -> list[Instance]:
    """The instances an event speaks to: the one its key names, or, without the key, all."""
    key = event.attributes.get(journey.key) if journey.key else None
    return [i for i in state.journeys if i.journey == journey.name and key in (None, i.key)]


def _go_on(
    state: CustomerState, journey: Journey, instance: Instance, event: CustomerEvent, at: int
) -> Applied:
    """A wait_for step's event arrives (the step is due now), or a skip_if event is noted."""
    step = journey.steps[instance.step] if instance.step < len(journey.steps) else None
    seen = instance.seen
    if any(event.type in s.skip_if for s in journey.steps):
        seen = seen | {event.type}
    moved = replace(instance, seen=seen)
    if step is not None and step.timing.wait_for == event.type and instance.due_at is None:
        full = instance.entered_at + journey.max_duration_ms
        moved = replace(moved, due_at=at, deadline=full)  # it fires now, in this same call
    return Applied(_replaced(state, instance, moved))


def _enter(
    state: CustomerState, journey: Journey, event: CustomerEvent, at: int, policy: Policy
) -> Applied:
    key = event.attributes.get(journey.key, "") if journey.key else ""
    live = [i for i in state.journeys if i.journey == journey.name]
    if any(i.key == key for i in live):
        return Applied(state)  # the same trigger again while it runs: nothing
    refusal = _refusal(state, key, policy)
    if refusal:
        refused = Transition(state.customer_id, journey.name, key, "refused", at, reason=refusal)
        return Applied(state, transitions=(refused,))
    deadline = at + journey.max_duration_ms
    first = Instance(
        journey.name, key, at, 0, None, deadline, at, event.event_id, times=_times(journey, event)
    )
    instance = _scheduled(first, journey, state, at)
    entered = Transition(state.customer_id, journey.name, key, "entered", at)
    return Applied(evolve(state, journeys=(*state.journeys, instance)), transitions=(entered,))


def _refusal(state: CustomerState, key: str, policy: Policy) -> str:
    if len(key.encode()) > MAX_KEY_BYTES:
        return "key_too_long"
    if len(state.journeys) >= policy.limits.max_journeys_per_customer:
        return "journeys_limit"
    return ""


def _times(journey: Journey, event: CustomerEvent) -> dict[str, int]:
    """The trigger's attributes that steps count back from (`before` ... `of`), as times."""
    names = {s.timing.of for s in journey.steps if s.timing.of}
    times = {}
    for name in names & set(event.attributes):
        moment = parse_time(event.attributes[name])
        if moment is not None:
            times[name] = moment
    return times


def fire_due_step(
    state: CustomerState, instance: Instance, policy: Policy, logged: Logged
) -> Applied:
    """The instance's next moment has come: its step fires, or it times out."""
    journey = policy.journey_named.get(instance.journey)
    if journey is None:  # the policy no longer has this journey
        return end(state, instance, "exited", "journey_removed", instance.next_time, policy)
    if instance.due_at is None or instance.deadline <= instance.due_at:
        return end(state, instance, "timed_out", "journey_timed_out", instance.deadline, policy)
    if instance.step >= len(journey.steps):  # the policy's journey has fewer steps now
        return Applied(_replaced(state, instance, replace(instance, due_at=None)))
    step, at = journey.steps[instance.step], instance.due_at
    advanced = replace(instance, step=instance.step + 1, last_due=at, due_at=None)
    moved = _replaced(state, instance, _scheduled(advanced, journey, state, at))
    skip = next((t for t in sorted(step.skip_if) if t in instance.seen), None)
    if skip is not None:
        why = f"skip_if:{skip}"
        skipped = Transition(
            state.customer_id, journey.name, instance.key, "step_skipped", at, step.name, why
        )
        return Applied(moved, transitions=(skipped,))
    candidate = step_candidate(state.customer_id, journey, instance, step, at)
    return decide_candidate(moved, candidate, at, policy, logged)


def _scheduled(instance: Instance, journey: Journey, state: CustomerState, at: int) -> Instance:
    """When the instance's next step fires, from the previous one's due time."""
    if instance.step >= len(journey.steps):
        return instance  # every step done: it waits for its goal, an exit or its deadline
    timing = journey.steps[instance.step].timing
    if timing.wait_for:
        deadline = min(instance.deadline, instance.last_due + (timing.within_ms or 0))
        return replace(instance, due_at=None, deadline=deadline)
    return replace(instance, due_at=max(_due(timing, instance, state), at))


def _due(timing: StepTiming, instance: Instance, state: CustomerState) -> int:
    if timing.after_ms is not None:
        return instance.last_due + timing.after_ms
    if timing.at_s is not None:
        tz = state.profile.timezone if state.profile else "UTC"
        return local_clock_on(instance.last_due, tz, timing.day_offset, timing.at_s)
    moment = instance.times.get(timing.of)
    return instance.last_due if moment is None else moment - (timing.before_ms or 0)


def end(
    state: CustomerState,
    instance: Instance,
    kind: str,
    reason: str,
    at: int,
    policy: Policy,
    value: float | None = None,
) -> Applied:
    """The instance ends: steps not yet due are dropped, held ones cancelled, at once."""
    state = evolve(state, journeys=tuple(i for i in state.journeys if i is not instance))
    ended = Transition(
        state.customer_id, instance.journey, instance.key, kind, at, reason=reason, value=value
    )
    applied = Applied(state, transitions=(ended,))
    for held in [p for p in state.pending if _belongs(p.candidate, instance)]:
        verdict = Verdict(Outcome.CANCELLED, at, reasons=(reason,))
        current = without_pending(applied.kept, held.candidate.message_id)
        applied = applied.then(settle(current, held.candidate, verdict, policy))
    return applied


def _belongs(candidate: Candidate, instance: Instance) -> bool:
    return candidate.journey == instance.journey and candidate.journey_key == instance.key


def step_candidate(
    customer_id: str, journey: Journey, instance: Instance, step: JourneyStep, at: int
) -> Candidate:
    return Candidate(
        message_id=step_message_id(journey.name, instance, step.name),
        customer_id=customer_id,
        category=step.category,
        audience=step.audience,
        channels=step.channels,
        urgency=step.urgency,
        created_at=at,
        template=step.template,
        priority=step.priority,
        payload={"journey": journey.name, "step": step.name, journey.key or "key": instance.key},
        journey=journey.name,
        journey_key=instance.key,
        step=step.name,
        purpose=step.purpose,
    )


def _value(event: CustomerEvent, journey: Journey) -> float | None:
    raw = event.attributes.get(journey.value_attribute)
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def parse_time(text: str) -> int | None:
    """An attribute that holds a time: epoch milliseconds, or ISO-8601 with an offset."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp() * 1000) if moment.tzinfo is not None else None


def _replaced(state: CustomerState, old: Instance, new: Instance) -> CustomerState:
    return evolve(state, journeys=tuple(new if i is old else i for i in state.journeys))
