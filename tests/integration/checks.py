"""Invariants checked from the topics alone."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from app.codecs.state import decode_state
from app.policy.model import FINAL_OUTCOMES, Category, Outcome
from app.policy.rules import Policy
from app.simulate import state_as_json
from app.whatif import cap_breaches
from tests.integration.conftest import TopicReader

FINALS = {o.value for o in FINAL_OUTCOMES}


def one_final_decision_each(decisions: list[dict[str, Any]], message_ids: set[str]) -> None:
    finals = Counter(d["message_id"] for d in decisions if d["outcome"] in FINALS)
    missing = message_ids - set(finals)
    assert not missing, (
        f"{len(missing)} candidates have no final decision, e.g. {sorted(missing)[:5]}"
    )
    twice = {m: n for m, n in finals.items() if n > 1}
    examples = [d for d in decisions if d["message_id"] in sorted(twice)[:3]]
    assert not twice, f"{len(twice)} candidates have several final decisions, e.g. {examples}"
    deferred = Counter(d["message_id"] for d in decisions if d["outcome"] == Outcome.DEFERRED.value)
    assert all(n == 1 for n in deferred.values()), "a candidate was deferred twice"


def no_message_sent_twice(reader: TopicReader, outbound_topics: list[str]) -> list[dict[str, Any]]:
    messages = []
    for topic in outbound_topics:
        ids = Counter(m["message_id"] for m in reader.values(topic, "tact.OutboundMessage"))
        twice = [m for m, n in ids.items() if n > 1]
        assert not twice, f"{topic}: {len(twice)} message_ids published twice, e.g. {twice[:5]}"
        messages.extend(reader.values(topic, "tact.OutboundMessage"))
    ids = Counter(m["message_id"] for m in messages)
    assert all(n == 1 for n in ids.values()), "a message went out on two channels"
    return messages


def sent_matches_decisions(messages: list[dict[str, Any]], decisions: list[dict[str, Any]]) -> None:
    sent = {d["message_id"]: d["channel"] for d in decisions if d["outcome"] == "sent"}
    assert {m["message_id"]: m["channel"] for m in messages} == sent


def caps_hold(messages: list[dict[str, Any]], policy: Policy) -> None:
    """No customer over any cap in any window, by the check `tact whatif` reports."""
    assert all(cap.window_ms for cap in policy.caps), "only rolling caps are checked here"
    sends = defaultdict(list)
    for m in messages:
        sends[m["customer_id"]].append((m["sent_at"], m["channel"], Category(m["category"])))
    over = cap_breaches(sends, {}, policy)  # rolling windows: the time zone does not matter
    assert not over, f"{len(over)} customers over a cap, e.g. {over[0]}: " + str(
        [
            (m["message_id"], m["channel"], m["sent_at"])
            for m in messages
            if m["customer_id"] == over[0]
        ]
    )


def table_states(records: list[Any]) -> dict[str, dict[str, Any]]:
    """The customers table as its changelog says: the last value of every state key."""
    last: dict[bytes, bytes | None] = {}
    for record in records:
        last[record.key] = record.value
    return {
        key[2:].decode(): state_as_json(decode_state(value))
        for key, value in last.items()
        if key.startswith(b"c/") and value is not None
    }


def state_difference(live: dict, simulated: dict) -> str:
    """The fields where a live customer state differs from its replay, both values shown."""
    return "; ".join(
        f"{key}: live {live.get(key)!r} != replay {simulated.get(key)!r}"
        for key in sorted(set(live) | set(simulated))
        if live.get(key) != simulated.get(key)
    )
