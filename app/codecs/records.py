"""Plain dicts (decoded Avro, or JSON Lines) to and from the core's values."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from app.policy.model import (
    Audience,
    Candidate,
    CapCount,
    Category,
    ContextItem,
    CustomerEvent,
    CustomerProfile,
    Decision,
    OutboundMessage,
    Outcome,
    Signal,
    Transition,
    Urgency,
)

E = TypeVar("E", bound=StrEnum)


class RecordError(ValueError):
    """A record that decodes but does not say what Tact needs, with the field at fault."""


REQUIRED = {
    "candidate": (
        "message_id",
        "customer_id",
        "category",
        "audience",
        "urgency",
        "created_at",
        "template",
    ),
    "event": ("event_id", "customer_id", "type", "occurred_at"),
    "profile": ("customer_id", "timezone"),
}


def _require(d: Mapping[str, Any], kind: str) -> None:
    """Every missing field at once, not one per try (the builders below then find them all)."""
    missing = [f for f in REQUIRED[kind] if f not in d]
    if missing:
        names = ", ".join(repr(f) for f in missing)
        raise RecordError(f"{kind}: missing field{'s' if len(missing) > 1 else ''} {names}")


def _members(kind: type[E]) -> Callable[[Any], E]:
    """The enum's member for its text: a dict lookup, where calling the enum costs 0.35 µs."""
    members = {member.value: member for member in kind}

    def member(text: Any) -> E:
        found = members.get(text) if isinstance(text, str) else None
        if found is None:
            raise ValueError(f"{text!r} is not a valid {kind.__name__}")
        return found

    return member


category_of, audience_of, urgency_of = _members(Category), _members(Audience), _members(Urgency)
outcome_of = _members(Outcome)


def candidate_from_dict(d: Mapping[str, Any]) -> Candidate:
    _require(d, "candidate")
    try:
        return Candidate(
            message_id=_text(d, "message_id"),
            customer_id=_text(d, "customer_id"),
            category=category_of(d["category"]),
            audience=audience_of(d["audience"]),
            channels=tuple(d.get("channels") or ()),
            urgency=urgency_of(d["urgency"]),
            created_at=_millis(d, "created_at"),
            template=_text(d, "template"),
            priority=d.get("priority"),
            dedupe_key=d.get("dedupe_key") or None,
            expires_at=_optional_millis(d, "expires_at"),
            payload=dict(d.get("payload") or {}),
            purpose=d.get("purpose") or "",
        )
    except ValueError as exc:
        raise RecordError(f"candidate: {exc}") from exc


def event_from_dict(d: Mapping[str, Any]) -> CustomerEvent:
    _require(d, "event")
    try:
        return CustomerEvent(
            event_id=_text(d, "event_id"),
            customer_id=_text(d, "customer_id"),
            type=_text(d, "type"),
            occurred_at=_millis(d, "occurred_at"),
            channel=d.get("channel"),
            attributes=dict(d.get("attributes") or {}),
        )
    except ValueError as exc:
        raise RecordError(f"event: {exc}") from exc


def profile_from_dict(d: Mapping[str, Any]) -> CustomerProfile:
    _require(d, "profile")
    return CustomerProfile(
        customer_id=_text(d, "customer_id"),
        timezone=_text(d, "timezone"),
        consents=dict(d.get("consents") or {}),
        reachable=dict(d.get("reachable") or {}),
        preferred_channel=d.get("preferred_channel"),
        segment=d.get("segment") or None,
        attributes=dict(d.get("attributes") or {}),
    )


def decision_to_dict(decision: Decision) -> dict[str, Any]:
    return {
        "message_id": decision.message_id,
        "customer_id": decision.customer_id,
        "outcome": decision.outcome,  # a StrEnum member is its text
        "channel": decision.channel,
        "reasons": list(decision.reasons),
        "policy_version": decision.policy_version,
        "decided_at": decision.decided_at,
        "category": decision.category,
        "release_at": decision.release_at,
        "journey": decision.journey,
        "step": decision.step,
        "cost": decision.cost,
        "caps": [{"cap": c.cap, "count": c.count, "limit": c.limit} for c in decision.caps],
    }


def decision_from_dict(d: Mapping[str, Any]) -> Decision:
    return Decision(
        message_id=d["message_id"],
        customer_id=d["customer_id"],
        outcome=outcome_of(d["outcome"]),
        channel=d.get("channel"),
        reasons=tuple(d["reasons"]),
        policy_version=d["policy_version"],
        decided_at=_millis(d, "decided_at"),
        category=category_of(d["category"]),
        release_at=_optional_millis(d, "release_at"),
        journey=d.get("journey"),
        step=d.get("step"),
        cost=d.get("cost"),
        caps=tuple(CapCount(c["cap"], c["count"], c["limit"]) for c in d.get("caps") or ()),
    )


def outbound_to_dict(message: OutboundMessage) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "customer_id": message.customer_id,
        "channel": message.channel,
        "template": message.template,
        "payload": dict(message.payload),
        "category": message.category,
        "sent_at": message.sent_at,
        "policy_version": message.policy_version,
        "context": [
            {"type": c.type, "at": c.at, "channel": c.channel, "detail": c.detail}
            for c in message.context
        ],
        "context_summary": message.context_summary,
    }


def outbound_from_dict(d: Mapping[str, Any]) -> OutboundMessage:
    return OutboundMessage(
        message_id=d["message_id"],
        customer_id=d["customer_id"],
        channel=d["channel"],
        template=d["template"],
        payload=dict(d["payload"]),
        category=category_of(d["category"]),
        sent_at=_millis(d, "sent_at"),
        policy_version=d["policy_version"],
        context=tuple(
            ContextItem(c["type"], _millis(c, "at"), c.get("channel"), c.get("detail"))
            for c in d["context"]
        ),
        context_summary=d["context_summary"],
    )


def transition_to_dict(transition: Transition, policy_version: str) -> dict[str, Any]:
    return {
        "transition_id": transition.transition_id,
        "customer_id": transition.customer_id,
        "journey": transition.journey,
        "instance_key": transition.key,
        "step": transition.step or None,
        "transition": transition.kind,
        "at": transition.at,
        "reason": transition.reason,
        "value": transition.value,
        "policy_version": policy_version,
    }


def signal_to_dict(signal: Signal) -> dict[str, Any]:
    return {
        "signal_id": signal.signal_id,
        "customer_id": signal.customer_id,
        "kind": signal.kind,
        "from_channel": signal.from_channel,
        "to_channel": signal.to_channel,
        "gap_ms": signal.gap_ms,
        "at": signal.at,
        "events": list(signal.events),
    }


def _text(d: Mapping[str, Any], field: str) -> str:
    value = d[field]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    return value


def _millis(d: Mapping[str, Any], field: str) -> int:
    return to_millis(d[field], field)


def _optional_millis(d: Mapping[str, Any], field: str) -> int | None:
    value = d.get(field)
    return None if value is None else to_millis(value, field)


def to_millis(value: Any, field: str = "time") -> int:
    """Epoch milliseconds from an int, or from an ISO-8601 text with a UTC offset."""
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a time, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return _aware_millis(value, field)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{field} {value!r} is not an ISO-8601 time") from None
        return _aware_millis(parsed, field)
    raise ValueError(f"{field} must be a time, got {value!r}")


def _aware_millis(moment: datetime, field: str) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"{field} {moment.isoformat()!r} has no UTC offset (add Z or +01:00)")
    return int(moment.timestamp() * 1000)


def iso(at_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC text, as the JSON Lines files write it."""
    return (
        datetime.fromtimestamp(at_ms / 1000, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
