"""Business checks on well-formed records: what makes a record undecidable (dead letter)."""

from __future__ import annotations

from app.policy.bounds import (
    MAX_ID_BYTES,
    MAX_REMEMBERED_ATTRIBUTES_BYTES,
    MAX_TYPE_BYTES,
    mapping_bytes,
)
from app.policy.localtime import is_valid_timezone
from app.policy.model import CHANNELS, DAY, Candidate, CustomerEvent, CustomerProfile

MAX_AGE_MS = 365 * DAY
MAX_AHEAD_MS = 1 * DAY
KNOWN_CHANNELS = frozenset(CHANNELS)
CANDIDATE_IDS = ("customer_id", "message_id", "dedupe_key", "template")


def candidate_problem(candidate: Candidate, clock: int) -> str | None:
    """Why this candidate cannot be decided, or None. Checked before `decide`. (A candidate for
    a customer without a profile can be decided: suppressed, unknown_customer.)"""
    texts = (candidate.customer_id, candidate.message_id, candidate.dedupe_key or "")
    too_long = _too_long(CANDIDATE_IDS, (*texts, candidate.template))
    if too_long:
        return too_long
    if len(candidate.purpose.encode()) > MAX_TYPE_BYTES:
        return f"purpose is longer than {MAX_TYPE_BYTES} bytes"
    if not candidate.channels and not candidate.purpose:
        return (
            "channels is empty and there is no purpose for the channel matrix: give a purpose "
            "or list at least one of " + ", ".join(CHANNELS)
        )
    if not KNOWN_CHANNELS.issuperset(candidate.channels):
        unknown = next(c for c in candidate.channels if c not in KNOWN_CHANNELS)
        return f"unknown channel {unknown!r}: use one of " + ", ".join(CHANNELS)
    if len(set(candidate.channels)) != len(candidate.channels):
        return "channels lists a channel twice"
    if candidate.expires_at is not None and candidate.expires_at < candidate.created_at:
        return "expires_at is before created_at"
    return time_problem("created_at", candidate.created_at, clock)


def event_problem(event: CustomerEvent, clock: int) -> str | None:
    if not event.type:
        return "type is empty"
    too_long = _too_long(("customer_id", "event_id"), (event.customer_id, event.event_id))
    if too_long or len(event.type.encode()) > MAX_TYPE_BYTES:
        return too_long or f"type is longer than {MAX_TYPE_BYTES} bytes"
    if event.channel is not None and event.channel not in CHANNELS:
        return f"unknown channel {event.channel!r}: use one of " + ", ".join(CHANNELS)
    return time_problem("occurred_at", event.occurred_at, clock)


def profile_problem(profile: CustomerProfile) -> str | None:
    too_long = _too_long(("customer_id",), (profile.customer_id,))
    if too_long:
        return too_long
    if not is_valid_timezone(profile.timezone):
        return f"timezone {profile.timezone!r} is not an IANA time zone name (e.g. Europe/Berlin)"
    for field, mapping in (("consents", profile.consents), ("reachable", profile.reachable)):
        unknown = [c for c in mapping if c not in CHANNELS]
        if unknown:
            return f"{field} names unknown channel {unknown[0]!r}: use " + ", ".join(CHANNELS)
    if profile.preferred_channel is not None and profile.preferred_channel not in CHANNELS:
        return f"preferred_channel {profile.preferred_channel!r} is not a channel"
    if profile.segment is not None and len(profile.segment.encode()) > MAX_TYPE_BYTES:
        return f"segment is longer than {MAX_TYPE_BYTES} bytes"
    if mapping_bytes(dict(profile.attributes)) > MAX_REMEMBERED_ATTRIBUTES_BYTES:
        return f"attributes take more than {MAX_REMEMBERED_ATTRIBUTES_BYTES} bytes"
    return None


def time_problem(field: str, at: int, clock: int) -> str | None:
    if at < clock - MAX_AGE_MS:
        return f"{field} is more than a year before now: a replayed or corrupt record"
    if at > clock + MAX_AHEAD_MS:
        return f"{field} is more than a day in the future: check the producer's clock"
    return None


def _too_long(names: tuple[str, ...], texts: tuple[str, ...]) -> str | None:
    """Identifiers are remembered per customer, so each has a bound (see bounds.py)."""
    for i, text in enumerate(texts):
        if len(text) * 4 > MAX_ID_BYTES and len(text.encode()) > MAX_ID_BYTES:
            return f"{names[i]} is longer than {MAX_ID_BYTES} bytes: use a shorter identifier"
    return None
