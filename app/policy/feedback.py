"""What the customer's reactions do at once: engagement scores, fallback, NPS/CSAT, complaints
and channel switches.

- delivered / opened / clicked / ignored / delivery_failed / bounced (with `message_id`, and the
  channel) add their weight to the channel's engagement score; delivered, opened or clicked
  close the message's fallback, delivery_failed or bounced start it (fallback.py).
- nps (`score` 0-10) and csat (`score` 1-5): a detractor gets the policy's stricter caps for a
  while; every score is attributed to the customer's last contact (channel and journey).
- complaint on a channel: no more promo on it (a consent word, `complaint:<channel>`).
- inbound contacts (`direction = inbound`) on one channel, then on another within the switch
  window: a signal, and optionally a lower score for the channel the customer left.
"""

from __future__ import annotations

from app.policy.channel_rules import DELIVERED_EVENTS, FAILED_EVENTS
from app.policy.consent import with_word
from app.policy.decide import Logged
from app.policy.engagement import with_weight
from app.policy.fallback import fall_back
from app.policy.fallback_rules import sent_named, without_sent
from app.policy.model import (
    Applied,
    ConsentWord,
    CustomerEvent,
    CustomerState,
    FeedbackScore,
    Inbound,
    Sent,
    Signal,
    evolve,
)
from app.policy.rules import Policy
from app.policy.send_time import ENGAGED, with_engaged_hour

SCORE_EVENTS = {"nps": (0.0, 10.0), "csat": (1.0, 5.0)}  # event type -> the score's range


def on_feedback(
    state: CustomerState, event: CustomerEvent, at: int, policy: Policy, logged: Logged
) -> Applied:
    named = event.attributes.get("message_id")
    sent = sent_named(state, named) if named and state.awaiting else None
    state = _engaged(state, event, sent, at, policy)
    if event.type in SCORE_EVENTS:
        return _scored(state, event, at, policy)
    if event.type == "complaint":
        return Applied(_complained(state, event, policy))
    if event.attributes.get("direction") == "inbound" and event.channel:
        return _inbound(state, event, at, policy)
    return _delivery(state, event, sent, at, policy, logged)


def _engaged(
    state: CustomerState, event: CustomerEvent, sent: Sent | None, at: int, policy: Policy
) -> CustomerState:
    rules = policy.channel_rules
    weight = rules.weights.get(event.type)
    channel = event.channel or (sent.channel if sent else None)
    if weight is None or channel is None:
        return state
    engagement = with_weight(state.engagement, channel, weight, at, rules.half_life_ms)
    if event.type not in ENGAGED:
        return evolve(state, engagement=engagement)
    tz = state.profile.timezone if state.profile else "UTC"
    hours = with_engaged_hour(state.hours, at, tz, weight, rules.half_life_ms)
    return evolve(state, engagement=engagement, hours=hours)


def _delivery(
    state: CustomerState,
    event: CustomerEvent,
    sent: Sent | None,
    at: int,
    policy: Policy,
    logged: Logged,
) -> Applied:
    """A delivery report closes the message's fallback, or (a failure) makes it happen now.
    A late one for a message already fallen back finds nothing open: only remembered."""
    if event.type not in DELIVERED_EVENTS and event.type not in FAILED_EVENTS:
        return Applied(state)
    if sent is None or (event.channel is not None and event.channel != sent.channel):
        return Applied(state)
    if event.type in DELIVERED_EVENTS:
        return Applied(evolve(state, awaiting=without_sent(state, sent)))
    if not policy.channel_rules.fallback:
        return Applied(state)
    return fall_back(state, sent, at, policy, logged)


def _scored(state: CustomerState, event: CustomerEvent, at: int, policy: Policy) -> Applied:
    low, high = SCORE_EVENTS[event.type]
    try:
        score = min(max(float(event.attributes.get("score", "")), low), high)
    except ValueError:
        return Applied(state)  # no usable score: the event is only remembered
    rules = policy.channel_rules
    limit = rules.detractor_nps if event.type == "nps" else rules.detractor_csat
    detractor = score <= limit
    if detractor:
        until = max(state.detractor_until, at + rules.detractor_for_ms)
        state = evolve(state, detractor_until=until)
    contact = state.last_contact
    channel, journey = (contact.channel, contact.journey) if contact else ("", "")
    return Applied(state, scores=(FeedbackScore(event.type, score, channel, journey, detractor),))


def _complained(state: CustomerState, event: CustomerEvent, policy: Policy) -> CustomerState:
    if not (event.channel and policy.channel_rules.complaint_opts_out):
        return state
    word = ConsentWord(event.occurred_at, event.event_id, False, "complaint")
    consent = with_word(state.consent, f"{event.channel}/promo", word)
    return state if consent is state.consent else evolve(state, consent=consent)


def _inbound(state: CustomerState, event: CustomerEvent, at: int, policy: Policy) -> Applied:
    assert event.channel is not None
    rules = policy.channel_rules
    last = state.last_inbound
    if last is not None and at < last.at:
        return Applied(state)  # an older contact, arriving late: the latest one stays
    state = evolve(state, last_inbound=Inbound(event.event_id, event.type, event.channel, at))
    if last is None or last.channel == event.channel or at - last.at > rules.switch_window_ms:
        return Applied(state)
    signal = Signal(
        state.customer_id,
        "channel_switch",
        last.channel,
        event.channel,
        at - last.at,
        at,
        (last.event_id, event.event_id),
    )
    if rules.switch_penalty:
        engagement = with_weight(
            state.engagement, last.channel, -rules.switch_penalty, at, rules.half_life_ms
        )
        state = evolve(state, engagement=engagement)
    return Applied(state, signals=(signal,))
