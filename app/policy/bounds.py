"""How large one customer's state can grow: every collection in it has a bound.

A customer's state is one record of the table's changelog, and Kafka refuses a record above its
`message.max.bytes` (1,048,588 bytes by default). A policy whose limits would let a state grow
past CHANGELOG_RECORD_LIMIT is refused when it is read. The estimate is in the encoded size
(msgpack, app/codecs/state.py): every text counts its UTF-8 bytes plus a header, every number 9.
"""

from __future__ import annotations

from math import ceil

from app.policy.model import CHANNELS, DAY, Candidate, Category
from app.policy.rules import Policy

CHANGELOG_RECORD_LIMIT = 1_000_000  # below Kafka's default message.max.bytes, with room
MAX_ID_BYTES = 128  # message_id, dedupe_key, event_id, customer_id, template (UTF-8)
MAX_TYPE_BYTES = 64  # an event's type
MAX_TIMEZONE_BYTES = 64
MAX_REMEMBERED_ATTRIBUTES_BYTES = 1024  # a recent event's attributes, beyond: not remembered
TEXT = 5  # msgpack header of a text
NUMBER = 9
ENTRY = 4  # array or map header


def text_bytes(text: str) -> int:
    return len(text.encode()) + TEXT


def mapping_bytes(mapping: dict[str, str] | object) -> int:
    assert isinstance(mapping, dict)
    return ENTRY + sum(text_bytes(k) + text_bytes(v) for k, v in mapping.items())


def candidate_bytes(candidate: Candidate) -> int:
    """What a held candidate adds to the state (counted against limits.max_held_bytes)."""
    ids = candidate.message_id, candidate.template, candidate.dedupe_key or ""
    return (
        sum(text_bytes(t) for t in ids)
        + 16 * len(candidate.channels)
        + mapping_bytes(dict(candidate.payload))
        + 6 * NUMBER
    )


def worst_case_state_bytes(policy: Policy) -> int:
    """The most bytes one customer's encoded state can take under this policy's limits."""
    limits = policy.limits
    an_id = MAX_ID_BYTES + TEXT
    decided = limits.max_messages_per_customer
    # Each send was decided within a dedupe window; sends are kept for history_ms (+ a day).
    windows = ceil((policy.history_ms + 2 * DAY) / policy.dedupe_window_ms)
    sends = decided * (windows + 1)
    scopes = len(CHANNELS) + len(Category) + len(CHANNELS) * len(Category)
    event = an_id + MAX_TYPE_BYTES + TEXT + 2 * NUMBER + MAX_REMEMBERED_ATTRIBUTES_BYTES
    return (
        an_id  # customer_id
        + MAX_TIMEZONE_BYTES
        + len(CHANNELS) * 2 * (16 + NUMBER)
        + 64  # profile
        + scopes * (32 + an_id + 2 * NUMBER)  # consent words
        + sends * NUMBER
        + len(CHANNELS) * len(Category) * 32  # times, by channel/category
        + decided * (an_id + NUMBER + 2)  # decided: message_id -> time
        + decided * (2 * an_id + NUMBER + ENTRY)  # dedupe: key -> (time, message_id)
        + limits.max_held_bytes
        + limits.max_pending_per_customer * (64 + 2 * NUMBER)
        + limits.context_events * event
        + limits.max_journeys_per_customer * _instance_bytes(policy)
        + MAX_TYPE_BYTES
        + MAX_REMEMBERED_ATTRIBUTES_BYTES  # profile segment, attributes
        + len(CHANNELS) * (16 + 2 * NUMBER)  # engagement scores
        + 24 * (4 + 2 * NUMBER)  # engaged local hours
        + _awaiting_bytes(policy)
        + 2 * (an_id + MAX_TYPE_BYTES + 2 * NUMBER)  # last contact, last inbound
        + 64  # version, headers
    )


def _awaiting_bytes(policy: Policy) -> int:
    """Sends awaiting delivery: as many bytes as held candidates at most (fallback_rules.py)."""
    per_send = 64 + 3 * NUMBER + 2 * len(CHANNELS) * 16
    return policy.limits.max_held_bytes + policy.channel_rules.max_awaiting * per_send


def _instance_bytes(policy: Policy) -> int:
    """A journey instance: its names and key, times, and the event types it notes."""
    notes = max((len(j.events) for j in policy.journeys), default=0)
    times = max((len(j.steps) for j in policy.journeys), default=0)
    return 3 * (64 + TEXT) + MAX_ID_BYTES + TEXT + 6 * NUMBER + notes * 70 + times * 40
