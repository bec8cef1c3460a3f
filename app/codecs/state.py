"""CustomerState to bytes and back, for the customers table (msgpack, never pickle).

The layout is positional and versioned: a change of layout bumps VERSION, and `decode_state`
then learns to read the previous version too, so a rolling upgrade can read what is stored.
"""

from __future__ import annotations

from typing import Any

import msgpack

from app.policy.model import (
    Audience,
    Candidate,
    Category,
    CustomerEvent,
    CustomerProfile,
    CustomerState,
    DedupeEntry,
    Pending,
    Send,
    Urgency,
)

VERSION = 1
# Looked up, not called: Category(value) costs ten times as much, once per remembered send.
_CATEGORIES = {category.value: category for category in Category}


class StateError(ValueError):
    """Stored state that this version of Tact cannot read."""


def encode_state(state: CustomerState) -> bytes:
    profile = state.profile
    encoded: bytes = msgpack.packb(
        [
            VERSION,
            state.customer_id,
            None
            if profile is None
            else [
                profile.timezone,
                dict(profile.consents),
                dict(profile.reachable),
                profile.preferred_channel,
            ],
            sorted(state.opted_out_categories),
            [[s.at, s.channel, s.category] for s in state.sends],  # a StrEnum packs as its text
            dict(state.decided),
            {k: [e.accepted_at, e.message_id] for k, e in state.dedupe.items()},
            [[_candidate(p.candidate), p.release_at, p.reason] for p in state.pending],
            [
                [e.event_id, e.type, e.occurred_at, e.channel, dict(e.attributes)]
                for e in state.recent
            ],
        ]
    )
    return encoded


def decode_state(data: bytes) -> CustomerState:
    fields: list[Any] = msgpack.unpackb(data, use_list=True, strict_map_key=False)
    if not fields or fields[0] != VERSION:
        raise StateError(f"state version {fields[0] if fields else None!r} is not {VERSION}")
    _, customer_id, profile, opted_out, sends, decided, dedupe, pending, recent = fields
    return CustomerState(
        customer_id=customer_id,
        profile=None if profile is None else CustomerProfile(customer_id, *profile),
        opted_out_categories=frozenset(opted_out),
        sends=tuple(Send(at, channel, _CATEGORIES[category]) for at, channel, category in sends),
        decided=decided,
        dedupe={k: DedupeEntry(at, message_id) for k, (at, message_id) in dedupe.items()},
        pending=tuple(
            Pending(_candidate_back(customer_id, c), release_at, reason)
            for c, release_at, reason in pending
        ),
        recent=tuple(
            CustomerEvent(event_id, customer_id, type_, at, channel, attributes)
            for event_id, type_, at, channel, attributes in recent
        ),
    )


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
    ) = f
    return Candidate(
        message_id=message_id,
        customer_id=customer_id,
        category=Category(category),
        audience=Audience(audience),
        channels=tuple(channels),
        urgency=Urgency(urgency),
        created_at=created_at,
        template=template,
        priority=priority,
        dedupe_key=key,
        expires_at=expires,
        payload=payload,
    )
