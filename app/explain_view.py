"""One customer's live view, from their state and the policy: what `GET /customers/{id}` answers
and `tact explain` prints. Pure: the same state, policy and time give the same view."""

from __future__ import annotations

from typing import Any

from app.codecs.records import iso
from app.codecs.state import state_as_json
from app.policy.caps import counting_window
from app.policy.model import CustomerState
from app.policy.rules import CapRule, Policy


def customer_view(state: CustomerState, policy: Policy, now: int) -> dict[str, Any]:
    plain = state_as_json(state)
    tz = state.profile.timezone if state.profile else "UTC"
    return {
        "customer_id": state.customer_id,
        "as_of": iso(now),
        "policy_version": policy.version,
        "profile": plain["profile"],
        "consent": plain["consent"],
        "caps": [cap_status(cap, policy, state, now, tz) for cap in policy.caps],
        "held": [
            {
                "message_id": p.candidate.message_id,
                "template": p.candidate.template,
                "category": p.candidate.category.value,
                "journey": p.candidate.journey or None,
                "step": p.candidate.step or None,
                "release_at": iso(p.release_at),
                "reason": p.reason,
            }
            for p in state.pending
        ],
        "journeys": [_instance(i, policy) for i in state.journeys],
        "engagement": {c: round(s.value, 3) for c, s in sorted(state.engagement.items())},
        "recent_events": [
            {"type": e.type, "at": iso(e.occurred_at), "channel": e.channel, "event_id": e.event_id}
            for e in reversed(state.recent)
        ],
        "sends": [
            {"at": iso(at), "channel": channel, "category": category}
            for at, channel, category in reversed(state.sends.sends())
        ],
        # The outcome and reasons of each are on the decisions topic (tact explain reads them).
        "recently_decided": [
            {"message_id": m, "at": iso(at)}
            for m, (at, _) in sorted(state.decided.items(), key=lambda item: -item[1][0])[:20]
        ],
        "awaiting_delivery": [
            {
                "message_id": s.candidate.message_id,
                "channel": s.channel,
                "sent_at": iso(s.at),
                "fallback_at": iso(s.check_at) if s.check_at is not None else None,
            }
            for s in state.awaiting
        ],
        "detractor_until": iso(state.detractor_until) if state.detractor_until else None,
    }


def cap_status(
    cap: CapRule, policy: Policy, state: CustomerState, now: int, tz: str
) -> dict[str, Any]:
    """How many sends count under the cap now, its limit, and when the next slot frees."""
    start, end = counting_window(cap, now, tz)
    times = state.sends.times_between(policy.cap_classes[cap.name], start, end)
    frees = None
    if len(times) >= cap.limit:
        # rolling: when enough of the window's sends have left it; calendar: the next period
        frees = times[len(times) - cap.limit] + cap.window_ms if cap.window_ms else end
    return {
        "cap": cap.name,
        "window": f"{cap.window_ms // 1000}s rolling" if cap.window_ms else cap.calendar,
        "count": len(times),
        "limit": cap.limit,
        "full": len(times) >= cap.limit,
        "next_slot_at": iso(frees) if frees is not None else None,
    }


def _instance(instance: Any, policy: Policy) -> dict[str, Any]:
    journey = policy.journey_named.get(instance.journey)
    steps = journey.steps if journey else ()
    step = steps[instance.step].name if instance.step < len(steps) else None
    return {
        "journey": instance.journey,
        "key": instance.key,
        "entered_at": iso(instance.entered_at),
        "next_step": step,
        "next_step_at": iso(instance.due_at) if instance.due_at is not None else None,
        "waiting_for": None
        if instance.due_at is not None or step is None
        else steps[instance.step].timing.wait_for or None,
        "times_out_at": iso(instance.deadline),
    }
