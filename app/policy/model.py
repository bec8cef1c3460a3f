"""Tact's domain values: immutable, plain and cheap to build.

Times are integers: milliseconds since the Unix epoch, UTC. Mappings held by these values are
never mutated after construction; the core always builds new ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from enum import Enum, StrEnum

from app.policy.history import Expiring, SendLog
from app.policy.units import DAY, HOUR, MINUTE, SECOND
from app.policy.valueclass import value

__all__ = ["DAY", "HOUR", "MINUTE", "SECOND"]  # the units live in units.py; model re-exports them

# in_app: the app or personal cabinet; manager: a task for the customer's personal manager or
# office, with the customer's context. Each has its outbound topic.
CHANNELS: tuple[str, ...] = ("email", "sms", "push", "call", "messenger", "in_app", "manager")


class Category(StrEnum):
    SERVICE = "service"
    TRANSACTIONAL = "transactional"
    PROMO = "promo"


class Audience(StrEnum):
    PERSONAL = "personal"
    MASS = "mass"


class Urgency(StrEnum):
    IMMEDIATE = "immediate"
    NORMAL = "normal"
    LOW = "low"


class Outcome(StrEnum):
    SENT = "sent"
    SUPPRESSED = "suppressed"
    DEFERRED = "deferred"
    DEDUPLICATED = "deduplicated"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL_OUTCOMES = frozenset(Outcome) - {Outcome.DEFERRED}


@value
class CustomerProfile:
    customer_id: str
    timezone: str
    consents: Mapping[str, bool] = field(default_factory=dict)
    reachable: Mapping[str, bool] = field(default_factory=dict)
    preferred_channel: str | None = None
    segment: str | None = None  # picks the channel matrix's rows made for it
    attributes: Mapping[str, str] = field(default_factory=dict)


@value
class CustomerEvent:
    event_id: str
    customer_id: str
    type: str
    occurred_at: int
    channel: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@value
class Candidate:
    message_id: str
    customer_id: str
    category: Category
    audience: Audience
    channels: tuple[str, ...]
    urgency: Urgency
    created_at: int
    template: str
    priority: int | None = None
    dedupe_key: str | None = None
    expires_at: int | None = None
    payload: Mapping[str, str] = field(default_factory=dict)
    journey: str = ""  # a journey's step: the journey, its instance's key and the step
    journey_key: str = ""
    step: str = ""
    purpose: str = ""  # what it is for (code, documents, offer...): the channel matrix's row
    fallback_of: str = ""  # the message this one resends on another channel


@value
class CapCount:
    """A cap as a decision saw it: the sends it counted then, and its limit."""

    cap: str
    count: int
    limit: int


@value
class Decision:
    """The one record that says what happened to a candidate, and why."""

    message_id: str
    customer_id: str
    outcome: Outcome
    channel: str | None
    reasons: tuple[str, ...]
    policy_version: str
    decided_at: int
    category: Category
    release_at: int | None = None
    journey: str | None = None  # the journey and step the candidate is a step of
    step: str | None = None
    cost: float | None = None  # what the send cost on its channel (the policy's price)
    caps: tuple[CapCount, ...] = ()  # the caps that could hold it back, as counted then


@value
class ContextItem:
    type: str
    at: int
    channel: str | None
    detail: str | None = None  # what the event was about: a template, an offer


@value
class OutboundMessage:
    """What a channel gateway receives: send it, identified by message_id."""

    message_id: str
    customer_id: str
    channel: str
    template: str
    payload: Mapping[str, str]
    category: Category
    sent_at: int
    policy_version: str
    context: tuple[ContextItem, ...]
    context_summary: str


@value
class Pending:
    """A candidate held back (quiet hours, arbitration) until `release_at`."""

    candidate: Candidate
    release_at: int
    reason: str

    @property
    def due_at(self) -> int:
        expires_at = self.candidate.expires_at
        return self.release_at if expires_at is None else min(self.release_at, expires_at)


@value
class Instance:
    """One run of a journey for one customer, kept in the customer's own state."""

    journey: str
    key: str  # what the trigger's `key` attribute named ("": one instance per customer)
    entered_at: int
    step: int  # the index of the next step
    due_at: int | None  # when that step fires (None: it waits for an event)
    deadline: int  # when the instance times out (max_duration, or a wait_for's `within`)
    last_due: int  # when the previous step was due (the trigger's time, first)
    entry: str  # the trigger's event_id: step message ids are unique per instance
    seen: frozenset[str] = frozenset()  # event types since entry, of those a skip_if names
    times: Mapping[str, int] = field(default_factory=dict)  # trigger times `before` counts from

    @property
    def next_time(self) -> int:
        return self.deadline if self.due_at is None else min(self.due_at, self.deadline)


@value
class Transition:
    """A journey instance moved: for the journeys topic and its funnel."""

    customer_id: str
    journey: str
    key: str
    kind: str  # entered, step_<outcome>, step_skipped, exited, converted, timed_out, refused
    at: int
    step: str = ""
    reason: str = ""
    value: float | None = None  # a goal's worth (the goal event's value attribute)

    @property
    def transition_id(self) -> str:
        """The same transition, replayed, has the same id (consumers dedupe by it)."""
        return f"{self.customer_id}/{self.journey}/{self.key}/{self.step}/{self.kind}@{self.at}"


@value
class Score:
    """A decayed sum: `value` as of `at`; it halves every half-life after."""

    value: float
    at: int


@value
class Sent:
    """A message sent that may still go out on another channel: it awaits its delivery."""

    candidate: Candidate  # as sent
    channel: str
    at: int
    check_at: int | None  # no `delivered` by then: fall back (the channel's fallback_after)
    tried: tuple[str, ...]  # every channel it went out on, this one last
    order: tuple[str, ...]  # the channels it may go out on, in order

    @property
    def root(self) -> str:
        return self.candidate.fallback_of or self.candidate.message_id


@value
class Contact:
    """The customer's last contact (a send): feedback scores are counted against it."""

    channel: str
    journey: str
    at: int


@value
class Inbound:
    """The customer's last contact with us (an inbound event): a switch is a signal."""

    event_id: str
    type: str
    channel: str
    at: int


@value
class Signal:
    """The customer turned from one channel to another within the switch window."""

    customer_id: str
    kind: str  # channel_switch
    from_channel: str
    to_channel: str
    gap_ms: int
    at: int
    events: tuple[str, ...]  # the two events' ids

    @property
    def signal_id(self) -> str:
        return f"{self.customer_id}/{self.kind}/{self.events[-1]}"


@value
class FeedbackScore:
    """An NPS or CSAT score, attributed to the customer's last contact."""

    kind: str  # nps | csat
    score: float
    channel: str
    journey: str
    detractor: bool


@value
class ConsentWord:
    """The customer's latest word on one consent scope, from an (un)subscribe event."""

    at: int  # the event's occurred_at: a later word wins, ties by event_id
    event_id: str
    subscribed: bool
    source: str = ""  # "complaint": said by complaining on the channel, not by unsubscribing

    def is_later_than(self, other: ConsentWord) -> bool:
        return (self.at, self.event_id) > (other.at, other.event_id)


@value
class CustomerState:
    """Everything Tact remembers about one customer."""

    customer_id: str
    profile: CustomerProfile | None = None
    # The customer's own word, by scope: "email", "category:promo", "email/promo" (consent.py).
    consent: Mapping[str, ConsentWord] = field(default_factory=dict)
    sends: SendLog = SendLog()
    decided: Expiring[None] = Expiring()  # message_id -> (decided_at, None)
    dedupe: Expiring[str] = Expiring()  # dedupe_key -> (claimed_at, message_id)
    pending: tuple[Pending, ...] = ()
    recent: tuple[CustomerEvent, ...] = ()  # newest last
    journeys: tuple[Instance, ...] = ()  # the live ones
    engagement: Mapping[str, Score] = field(default_factory=dict)  # by channel
    awaiting: tuple[Sent, ...] = ()  # sent, delivery not yet confirmed, a fallback possible
    detractor_until: int = 0  # a low NPS/CSAT: the stricter caps hold until then
    last_contact: Contact | None = None
    last_inbound: Inbound | None = None
    hours: Mapping[int, Score] = field(default_factory=dict)  # local hour -> opens and clicks

    @property
    def next_due(self) -> int | None:
        """When the earliest held candidate, journey step or delivery check must be looked at."""
        due: int | None = None  # loops, not min() over generators: this runs for every input
        for held in self.pending:
            if due is None or held.due_at < due:
                due = held.due_at
        for instance in self.journeys:
            at = instance.next_time
            if due is None or at < due:
                due = at
        for sent in self.awaiting:
            check = sent.check_at
            if check is not None and (due is None or check < due):
                due = check
        return due

    @property
    def opted_out_categories(self) -> frozenset[str]:
        """Categories the customer's latest word on refuses, on every channel."""
        return frozenset(
            scope.removeprefix("category:")
            for scope, word in self.consent.items()
            if scope.startswith("category:") and not word.subscribed
        )


class _Keep(Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP  # evolve(): leave this field as it is


def evolve(
    state: CustomerState,
    *,
    profile: CustomerProfile | _Keep | None = KEEP,
    consent: Mapping[str, ConsentWord] | _Keep = KEEP,
    sends: SendLog | _Keep = KEEP,
    decided: Expiring[None] | _Keep = KEEP,
    dedupe: Expiring[str] | _Keep = KEEP,
    pending: tuple[Pending, ...] | _Keep = KEEP,
    recent: tuple[CustomerEvent, ...] | _Keep = KEEP,
    journeys: tuple[Instance, ...] | _Keep = KEEP,
    engagement: Mapping[str, Score] | _Keep = KEEP,
    awaiting: tuple[Sent, ...] | _Keep = KEEP,
    detractor_until: int | _Keep = KEEP,
    last_contact: Contact | _Keep | None = KEEP,
    last_inbound: Inbound | _Keep | None = KEEP,
    hours: Mapping[int, Score] | _Keep = KEEP,
) -> CustomerState:
    """`dataclasses.replace` for the hot path: the fields named, typed, and no per-call checks."""
    return CustomerState(
        state.customer_id,
        state.profile if profile is KEEP else profile,
        state.consent if consent is KEEP else consent,
        state.sends if sends is KEEP else sends,
        state.decided if decided is KEEP else decided,
        state.dedupe if dedupe is KEEP else dedupe,
        state.pending if pending is KEEP else pending,
        state.recent if recent is KEEP else recent,
        state.journeys if journeys is KEEP else journeys,
        state.engagement if engagement is KEEP else engagement,
        state.awaiting if awaiting is KEEP else awaiting,
        state.detractor_until if detractor_until is KEEP else detractor_until,
        state.last_contact if last_contact is KEEP else last_contact,
        state.last_inbound if last_inbound is KEEP else last_inbound,
        state.hours if hours is KEEP else hours,
    )


@value
class Applied:
    """What one input did to one customer: the new state and the records that announce it.

    The only result the core hands out, for every kind of input."""

    state: CustomerState | None  # None: the customer is forgotten
    decisions: tuple[Decision, ...] = ()
    outbound: tuple[OutboundMessage, ...] = ()
    problem: str | None = None  # the record cannot be used: a dead letter
    repeated: bool = False  # a candidate decided before (a redelivery): nothing new
    transitions: tuple[Transition, ...] = ()
    signals: tuple[Signal, ...] = ()
    scores: tuple[FeedbackScore, ...] = ()

    @property
    def kept(self) -> CustomerState:
        """The state, where the core knows the customer was not forgotten."""
        assert self.state is not None
        return self.state

    def then(self, later: Applied) -> Applied:
        """This, followed by `later` on its state."""
        if not (self.decisions or self.outbound or self.transitions or self.signals or self.scores):
            return later  # the common case: nothing was released before
        return Applied(
            later.state,
            self.decisions + later.decisions,
            self.outbound + later.outbound,
            later.problem,
            later.repeated,
            self.transitions + later.transitions,
            self.signals + later.signals,
            self.scores + later.scores,
        )
