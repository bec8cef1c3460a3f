"""`tact explain CUSTOMER`: one customer's story for a person, or as JSON for tools.

The past (decisions and the reasons they carry) comes from the decisions topic, reading only
the customer's partition; the present and the scheduled (caps, held candidates, journeys) from
the live view of the worker that owns the customer (any worker of the group forwards to it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aiohttp

from app.config import Settings
from app.tail import tail


class NoWorker(Exception):
    """No worker's view answered."""


async def live_view(settings: Settings, url: str, customer_id: str) -> dict[str, Any] | None:
    """The owner's view of the customer (None: the worker knows no such customer)."""
    headers = {"Authorization": f"Bearer {settings.bearer_token}"} if settings.bearer_token else {}
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"{url}/customers/{customer_id}", headers=headers) as answer,
        ):
            if answer.status == 404:
                return None
            if answer.status == 401:
                raise NoWorker(f"the worker at {url} wants a bearer token: set TACT_VIEW_TOKEN")
            if answer.status != 200:
                raise NoWorker(
                    f"the worker at {url} answered {answer.status}: {(await answer.text())[:200]}"
                )
            view: dict[str, Any] = await answer.json()
            return view
    except aiohttp.ClientError as exc:
        raise NoWorker(
            f"no worker is reachable at {url} ({exc}); is one running, with its "
            "view on (TACT_VIEW_PORT)?"
        ) from None
    except TimeoutError:
        raise NoWorker(f"the worker at {url} did not answer within 10 s") from None


async def past_decisions(settings: Settings, customer_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    await tail(
        settings, "decisions", customer_id, False, lambda line: found.append(json.loads(line))
    )
    return found


def story(
    customer_id: str,
    view: dict[str, Any] | None,
    decisions: list[dict[str, Any]],
    message_id: str | None,
) -> dict[str, Any]:
    """What explain prints, as one JSON value."""
    if message_id is not None:
        decisions = [d for d in decisions if d["message_id"] == message_id]
    return {
        "customer_id": customer_id,
        "view": view,
        "decisions": decisions,
        "message_id": message_id,
    }


REASONS = {
    "cap:": "the cap {0} was full",
    "quiet_hours": "quiet hours in the customer's time zone",
    "arbitration": "held a moment so the best candidate wins the cap slot",
    "send_time": "held for the customer's best hour ({0})",
    "duplicate_of:": "the same dedupe key was decided before, as {0}",
    "fallback_of:": "sent again on another channel: {0} was not delivered",
    "expired": "it expired before it could go out",
    "unknown_customer": "no profile for the customer yet",
    "pending_limit": "too many candidates held for the customer",
    "customer_limit": "too many messages for the customer in the dedupe window",
    "opted_out:": "the customer opted out of {0}",
    "complaint:": "the customer complained about {0}",
    "skip_if:": "skipped: the customer did {0} since the journey began",
    "customer_deleted": "the customer's profile was deleted",
}


def explain_reason(reason: str) -> str:
    for code, text in REASONS.items():
        if reason.startswith(code):
            detail = reason[len(code) :].lstrip(":")
            return text.format(detail)
    if ":" in reason:
        channel, why = reason.split(":", 1)
        return f"not by {channel}: {why.replace('_', ' ')}"
    return reason.replace("_", " ")


def render(told: dict[str, Any], say: Callable[[str], None]) -> None:
    """The story as lines for a person."""
    view, decisions = told["view"], told["decisions"]
    say(f"Customer {told['customer_id']}")
    if view is None:
        say("  no live state: the owning worker knows no such customer")
    else:
        profile = view.get("profile") or {}
        say(
            f"  time zone {profile.get('timezone')}, consents "
            f"{', '.join(c for c, yes in (profile.get('consents') or {}).items() if yes) or '-'}"
            f" (as of {view['as_of']}, policy {view['policy_version']})"
        )
        for cap in view["caps"]:
            frees = f", next slot {cap['next_slot_at']}" if cap["next_slot_at"] else ""
            say(f"  cap {cap['cap']}: {cap['count']} of {cap['limit']} ({cap['window']}){frees}")
    if told["message_id"] is not None:
        say(f"Message {told['message_id']}")
        if not decisions:
            say("  no decision for it on the decisions topic")
    else:
        say("Past decisions")
    for d in decisions:
        where = f" by {d['channel']}" if d.get("channel") else ""
        step = f" [{d['journey']}/{d['step']}]" if d.get("journey") else ""
        say(f"  {d['decided_at']}  {d['message_id']}{step}: {d['outcome']}{where}")
        for reason in d.get("reasons") or ():
            say(f"      because {explain_reason(reason)}  ({reason})")
        if d.get("caps"):
            seen = ", ".join(f"{c['cap']} {c['count']} of {c['limit']}" for c in d["caps"])
            say(f"      caps as counted then: {seen}")
        if d.get("release_at"):
            say(f"      to be looked at again at {d['release_at']}")
    if view is not None and told["message_id"] is None:
        say("Scheduled")
        for held in view["held"]:
            why = explain_reason(held["reason"])
            say(f"  {held['release_at']}  {held['message_id']} held: {why}")
        for j in view["journeys"]:
            when = j["next_step_at"] or (
                f"when {j['waiting_for']} arrives" if j["waiting_for"] else "-"
            )
            say(
                f"  {when}  journey {j['journey']} ({j['key'] or 'one per customer'}): "
                f"next step {j['next_step']}, times out {j['times_out_at']}"
            )
        if not view["held"] and not view["journeys"]:
            say("  nothing")
        if view["recent_events"]:
            say("Recent events")
            for event in view["recent_events"]:
                via = f" via {event['channel']}" if event.get("channel") else ""
                say(f"  {event['at']}  {event['type']}{via}")
