"""CustomerState to bytes and back, for the customers table (msgpack, never pickle).

The layout is positional and versioned: a change of layout bumps VERSION, and `decode_state`
then learns to read the previous version too, so a rolling upgrade can read what is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Any

import msgpack

from app.codecs.records import audience_of, category_of, urgency_of
from app.policy.history import EMPTY, Expiring, SendLog
from app.policy.model import (
    Candidate,
    ConsentWord,
    Contact,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    Inbound,
    Instance,
    Pending,
    Score,
    Sent,
)

# 3: engagement, sends awaiting delivery, feedback and contacts (appended fields: a version 2
# state reads as one without them); 2: the consent ledger, sends by class; 1: opted_out_categories
VERSION = 3


class StateError(ValueError):
    """Stored state that this version of Tact cannot read."""


Last = tuple[int, str] | None  # an Expiring part's last entry as written: (time, key)


def encode_state(state: CustomerState) -> bytes:
    return pack_state(state).data


@dataclass(frozen=True, slots=True)
class PackedState:
    """A state with the bytes of each of its parts: the next state of the same customer shares
    most parts with it (the core keeps what it does not change, by identity), and packing those
    again was most of what a write cost a customer with a long history."""

    state: CustomerState
    values: tuple[Any, ...]  # the state's fields, in LAYOUT order
    parts: tuple[bytes, ...]  # each field's bytes
    pending: tuple[bytes, ...]  # each held candidate's
    awaiting: tuple[bytes, ...]  # each send awaiting delivery's
    last_decided: Last  # the last entry of each Expiring part's bytes
    last_dedupe: Last
    send_classes: Mapping[str, bytes]  # each send class's key and times, as packed

    @property
    def data(self) -> bytes:
        return _HEAD + b"".join(self.parts)


def pack_state(state: CustomerState, previous: PackedState | None = None) -> PackedState:
    """The state's bytes; the parts it shares with `previous` (the customer's state before)
    are not packed again. The same bytes either way."""
    before = previous or _NOTHING_BEFORE
    values = _FIELDS(state)
    pending, awaiting = before.pending, before.awaiting
    if values[_PENDING] is not before.values[_PENDING]:
        pending = _entries(values[_PENDING], before.values[_PENDING], pending, _held)
    if values[_AWAITING] is not before.values[_AWAITING]:
        awaiting = _entries(values[_AWAITING], before.values[_AWAITING], awaiting, _sent)
    decided, last_decided = _expiring(values, before, _DECIDED, before.last_decided, _time)
    dedupe, last_dedupe = _expiring(values, before, _DEDUPE, before.last_dedupe, _time_and)
    send_classes = before.send_classes
    if values[_SENDS] is not before.values[_SENDS]:
        send_classes = _send_classes(values[_SENDS], before.values[_SENDS], send_classes)
    parts = []
    for index, (value, old, plain) in enumerate(zip(values, before.values, _PLAIN, strict=True)):
        if value is old:
            parts.append(before.parts[index])
        elif index == _PENDING:
            parts.append(_array(pending))
        elif index == _AWAITING:
            parts.append(_array(awaiting))
        elif index == _DECIDED:
            parts.append(decided)
        elif index == _DEDUPE:
            parts.append(dedupe)
        elif index == _SENDS:
            header = _PACKER.pack_map_header(len(send_classes))
            parts.append(header + b"".join(send_classes.values()))
        else:
            parts.append(_pack(plain(value)))
    return PackedState(
        state, values, tuple(parts), pending, awaiting, last_decided, last_dedupe, send_classes
    )


def _send_classes(sends: SendLog, before: Any, packed: Mapping[str, bytes]) -> dict[str, bytes]:
    """Each send class's bytes, in class order. A class whose times the core kept, by identity,
    is not packed again; one with a send more, the latest, has it appended to its bytes."""
    old = before.times if isinstance(before, SendLog) else EMPTY
    classes = {}
    for key, times in sorted(sends.times.items()):
        was = old.get(key)
        if times is was:
            classes[key] = packed[key]
        elif was is not None and len(times) == len(was) + 1 and times[:-1] == was:
            name, header = _pack(key), _PACKER.pack_array_header(len(times))
            old_times = packed[key][len(name) + len(_PACKER.pack_array_header(len(was))) :]
            classes[key] = name + header + old_times + _pack(times[-1])
        else:
            classes[key] = _pack(key) + _pack(list(times))
    return classes


def _expiring(
    values: tuple[Any, ...],
    before: PackedState,
    index: int,
    last: Last,
    plain: Callable[[int, Any], Any],
) -> tuple[bytes, Last]:
    """An Expiring part's bytes: a map in (time, key) order, so that they do not depend on the
    process's string hashing, and one entry more than the state before, the latest, is appended
    to its bytes (each decision adds one to `decided`)."""
    value, old = values[index], before.values[index]
    if value is old:
        return before.parts[index], last
    if not value:
        return _EMPTY_MAP, None
    grown_from, key = value.grown_from, value.added
    if isinstance(old, Expiring) and grown_from is old.entries:
        at, item = value.entries[key]
        if last is None or (at, key) > last:
            body = before.parts[index][len(_PACKER.pack_map_header(len(old))) :]
            added = _pack(key) + _pack(plain(at, item))
            return _PACKER.pack_map_header(len(value)) + body + added, (at, key)
    ordered = sorted(value.entries.items())  # by key; then stably by time: by (time, key)
    ordered.sort(key=_entry_time)
    last_key, (last_at, _) = ordered[-1]
    return _pack({key: plain(at, item) for key, (at, item) in ordered}), (last_at, last_key)


def _entry_time(entry: tuple[str, tuple[int, Any]]) -> int:
    return entry[1][0]


def _time(at: int, _: None) -> int:
    return at


def _time_and(at: int, item: Any) -> list[Any]:
    return [at, item]


def _entries(
    entries: tuple[Any, ...],
    before: tuple[Any, ...],
    packed_before: tuple[bytes, ...],
    plain: Callable[[Any], list[Any]],
) -> tuple[bytes, ...]:
    """Each entry's bytes, kept from the entries before for those it still holds, by identity.
    The core keeps entries in their order (it drops some, appends new ones), so one pass over
    the entries before finds every kept one."""
    packed, j = [], 0
    for entry in entries:
        k = j
        while k < len(before) and before[k] is not entry:
            k += 1
        if k < len(before):
            packed.append(packed_before[k])
            j = k + 1
        else:
            packed.append(_pack(plain(entry)))
    return tuple(packed)


def _array(packed: tuple[bytes, ...]) -> bytes:
    header: bytes = _PACKER.pack_array_header(len(packed))
    return header + b"".join(packed)


def _pack(plain: Any) -> bytes:
    packed: bytes = _PACKER.pack(plain)
    return packed


def _profile(profile: CustomerProfile | None) -> list[Any] | None:
    if profile is None:
        return None
    return [
        profile.timezone,
        dict(profile.consents),
        dict(profile.reachable),
        profile.preferred_channel,
        profile.segment,
        dict(profile.attributes),
    ]


def _held(p: Pending) -> list[Any]:
    return [_candidate(p.candidate), p.release_at, p.reason]


def _scores(scores: Mapping[Any, Score]) -> dict[Any, list[Any]]:
    return {key: [score.value, score.at] for key, score in scores.items()}


def _as_is(value: Any) -> Any:
    return value


# The stored layout after VERSION: each field of the state and how it is written.
LAYOUT: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("customer_id", _as_is),
    ("profile", _profile),
    ("consent", lambda consent: {scope: _word(w) for scope, w in consent.items()}),
    ("sends", _as_is),  # packed class by class
    ("decided", _as_is),  # packed by _expiring
    ("dedupe", _as_is),  # packed by _expiring
    ("pending", _as_is),  # packed entry by entry
    (
        "recent",
        lambda recent: [
            [e.event_id, e.type, e.occurred_at, e.channel, dict(e.attributes)] for e in recent
        ],
    ),
    ("journeys", lambda journeys: [_instance(i) for i in journeys]),
    ("engagement", _scores),
    ("awaiting", _as_is),  # packed entry by entry
    ("detractor_until", _as_is),
    ("last_contact", lambda c: None if c is None else list(_contact(c))),
    ("last_inbound", lambda i: None if i is None else list(_inbound(i))),
    ("hours", _scores),
)
_NAMES = [name for name, _ in LAYOUT]
_FIELDS = attrgetter(*_NAMES)  # a state's fields as one tuple, in LAYOUT order
_PLAIN = [plain for _, plain in LAYOUT]
_PENDING, _AWAITING = _NAMES.index("pending"), _NAMES.index("awaiting")
_DECIDED, _DEDUPE, _SENDS = _NAMES.index("decided"), _NAMES.index("dedupe"), _NAMES.index("sends")
_PACKER = msgpack.Packer()
_EMPTY_MAP: bytes = _PACKER.pack({})
_HEAD: bytes = _PACKER.pack_array_header(len(LAYOUT) + 1) + _PACKER.pack(VERSION)
# Before a customer's first state: fresh empty lists, so that no field of a state is one of them.
_NOTHING_BEFORE = PackedState(
    CustomerState(""), tuple([] for _ in LAYOUT), (b"",) * len(LAYOUT), (), (), None, None, {}
)


def _word(w: ConsentWord) -> list[Any]:
    return (
        [w.at, w.event_id, w.subscribed, w.source] if w.source else [w.at, w.event_id, w.subscribed]
    )


def _sent(s: Sent) -> list[Any]:
    return [_candidate(s.candidate), s.channel, s.at, s.check_at, list(s.tried), list(s.order)]


def _sent_back(customer_id: str, f: list[Any]) -> Sent:
    candidate, channel, at, check_at, tried, order = f
    return Sent(
        _candidate_back(customer_id, candidate), channel, at, check_at, tuple(tried), tuple(order)
    )


def _contact(c: Contact) -> tuple[Any, ...]:
    return (c.channel, c.journey, c.at)


def _inbound(i: Inbound) -> tuple[Any, ...]:
    return (i.event_id, i.type, i.channel, i.at)


def decode_state(data: bytes) -> CustomerState:
    fields: list[Any] = msgpack.unpackb(data, use_list=True, strict_map_key=False)
    version = fields[0] if fields else None
    if version == 1:
        fields = _from_version_1(fields)
    elif version not in (2, VERSION):
        raise StateError(f"state version {version!r} is not one of {VERSION}, 2 or 1")
    _, customer_id, profile, consent, sends, decided, dedupe, pending, recent, *rest = fields
    # Fields a state written by an earlier Tact does not have yet, as that Tact meant them:
    later: list[Any] = [*rest, *([], {}, [], 0, None, None, {})[len(rest) :]]
    journeys, engagement, awaiting, detractor_until, contact, inbound, hours = later
    return CustomerState(
        customer_id=customer_id,
        profile=None if profile is None else CustomerProfile(customer_id, *profile),
        consent={scope: ConsentWord(*word) for scope, word in consent.items()},
        sends=SendLog.decoded({k: tuple(t) for k, t in sends.items()}),
        decided=Expiring.of((m, at, None) for m, at in decided.items()),
        dedupe=Expiring.of((k, at, m) for k, (at, m) in dedupe.items()),
        pending=tuple(
            Pending(_candidate_back(customer_id, c), release_at, reason)
            for c, release_at, reason in pending
        ),
        recent=tuple(
            CustomerEvent(event_id, customer_id, type_, at, channel, attributes)
            for event_id, type_, at, channel, attributes in recent
        ),
        journeys=tuple(_instance_back(i) for i in journeys),
        engagement={channel: Score(value, at) for channel, (value, at) in engagement.items()},
        awaiting=tuple(_sent_back(customer_id, s) for s in awaiting),
        detractor_until=detractor_until,
        last_contact=None if contact is None else Contact(*contact),
        last_inbound=None if inbound is None else Inbound(*inbound),
        hours={hour: Score(value, at) for hour, (value, at) in hours.items()},
    )


def _from_version_1(fields: list[Any]) -> list[Any]:
    """A state written before the consent ledger: category opt-outs become words with no time
    (any later word wins), and the sends a list in time order."""
    _, customer_id, profile, opted_out, sends, decided, dedupe, pending, recent = fields
    consent = {f"category:{c}": [0, "", False] for c in opted_out}
    by_class: dict[str, list[int]] = {}
    for at, channel, category in sends:
        by_class.setdefault(f"{channel}/{category}", []).append(at)
    return [VERSION, customer_id, profile, consent, by_class, decided, dedupe, pending, recent]


def _candidate(c: Candidate) -> list[Any]:
    return [
        c.message_id,
        c.category.value,
        c.audience.value,
        list(c.channels),
        c.urgency.value,
        c.created_at,
        c.template,
        c.priority,
        c.dedupe_key,
        c.expires_at,
        dict(c.payload),
        c.journey,
        c.journey_key,
        c.step,
        c.purpose,
        c.fallback_of,
    ]


def _candidate_back(customer_id: str, f: list[Any]) -> Candidate:
    (
        message_id,
        category,
        audience,
        channels,
        urgency,
        created_at,
        template,
        priority,
        key,
        expires,
        payload,
        *later,
    ) = f
    # Fields a candidate held by an earlier Tact does not have: not a journey's step, no
    # purpose, not a fallback.
    journey, journey_key, step_name, purpose, fallback_of = [*later, *("",) * 5][:5]
    return Candidate(
        message_id=message_id,
        customer_id=customer_id,
        category=category_of(category),
        audience=audience_of(audience),
        channels=tuple(channels),
        urgency=urgency_of(urgency),
        created_at=created_at,
        template=template,
        priority=priority,
        dedupe_key=key,
        expires_at=expires,
        payload=payload,
        journey=journey,
        journey_key=journey_key,
        step=step_name,
        purpose=purpose,
        fallback_of=fallback_of,
    )


def _instance(i: Instance) -> list[Any]:
    return [
        i.journey,
        i.key,
        i.entered_at,
        i.step,
        i.due_at,
        i.deadline,
        i.last_due,
        i.entry,
        sorted(i.seen),
        dict(i.times),
    ]


def _instance_back(f: list[Any]) -> Instance:
    journey, key, entered_at, step, due_at, deadline, last_due, entry, seen, times = f
    return Instance(
        journey, key, entered_at, step, due_at, deadline, last_due, entry, frozenset(seen), times
    )


def state_as_json(state: CustomerState) -> dict[str, Any]:
    """A customer's state as plain JSON values, sorted, for people and for comparing replays."""
    return {
        "customer_id": state.customer_id,
        "profile": None if state.profile is None else _plain(asdict(state.profile)),
        "opted_out_categories": sorted(state.opted_out_categories),
        "consent": {s: _plain(asdict(w)) for s, w in sorted(state.consent.items())},
        "sends": [
            {"at": at, "channel": channel, "category": category}
            for at, channel, category in state.sends.sends()
        ],
        "decided": {m: at for m, (at, _) in sorted(state.decided.items())},
        "dedupe": {
            k: {"accepted_at": at, "message_id": m} for k, (at, m) in sorted(state.dedupe.items())
        },
        "pending": [_plain(asdict(p)) for p in state.pending],
        "recent": [_plain(asdict(e)) for e in state.recent],
        "journeys": [_plain({**asdict(i), "seen": sorted(i.seen)}) for i in state.journeys],
        "engagement": {c: _plain(asdict(score)) for c, score in sorted(state.engagement.items())},
        "awaiting": [_plain(asdict(s)) for s in state.awaiting],
        "detractor_until": state.detractor_until,
        "last_contact": None if state.last_contact is None else _plain(asdict(state.last_contact)),
        "last_inbound": None if state.last_inbound is None else _plain(asdict(state.last_inbound)),
        "hours": {str(h): _plain(asdict(score)) for h, score in sorted(state.hours.items())},
    }


def _plain(value: Any) -> Any:
    plain = json.loads(json.dumps(value, default=str, sort_keys=True))
    return plain
