"""Offline replay: JSON Lines records through the same core the worker runs.

Records are applied in file order. The simulated clock is the latest record time seen so far;
before each record, held candidates that are due by then are released, as the worker's timer
would have done.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from app.codecs.records import (
    RecordError,
    candidate_from_dict,
    decision_to_dict,
    event_from_dict,
    iso,
    profile_from_dict,
    signal_to_dict,
    to_millis,
    transition_to_dict,
)
from app.codecs.state import state_as_json
from app.collector import collector_off
from app.policy.engine import Applied, Due, Input, ProfileDeleted, apply_record, record_time
from app.policy.model import CustomerState, Decision, OutboundMessage, Signal, Transition
from app.policy.rules import Policy

KINDS = ("profile", "event", "candidate")


@dataclass
class Replay:
    decisions: list[Decision] = field(default_factory=list)
    outbound: list[OutboundMessage] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)  # of journey instances
    signals: list[Signal] = field(default_factory=list)
    dead_letters: list[tuple[int, str]] = field(default_factory=list)  # (line, error)
    states: dict[str, CustomerState] = field(default_factory=dict)
    clock: int | None = None

    def collect(self, applied: Applied) -> None:
        """What one record (or release) decided; a subclass may tally it instead of keeping it."""
        self.decisions.extend(applied.decisions)
        self.outbound.extend(applied.outbound)
        self.transitions.extend(applied.transitions)
        self.signals.extend(applied.signals)


def parse_record(obj: Any) -> Input:
    """One JSON Lines object: {"kind": "profile" | "event" | "candidate", ...fields}."""
    if not isinstance(obj, dict):
        raise RecordError('each line must be a JSON object with a "kind"')
    kind = obj.get("kind")
    if kind == "candidate":
        return candidate_from_dict(obj)
    if kind == "event":
        return event_from_dict(obj)
    if kind == "profile":
        if obj.get("deleted"):
            return ProfileDeleted(str(obj.get("customer_id")))
        return profile_from_dict(obj)
    raise RecordError(f"kind {kind!r} is not one of: {', '.join(KINDS)}")


def read_records(lines: Iterable[str]) -> Iterator[tuple[int, Input | RecordError]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, parse_record(orjson.loads(line))
        except json.JSONDecodeError as exc:
            yield number, RecordError(f"not JSON: {exc.msg} at column {exc.colno}")
        except RecordError as exc:
            yield number, exc


def replay(
    records: Iterable[tuple[int, Input | RecordError]],
    policy: Policy,
    until: int | None = None,
    resume: Replay | None = None,
    into: Replay | None = None,
) -> Replay:
    """Apply records in order; `resume` continues from the states and clock of an earlier replay;
    what is decided goes `into` the given Replay (a new one by default)."""
    result = into if into is not None else Replay()
    if resume:
        result.states, result.clock = dict(resume.states), resume.clock
    due = [(s.next_due, c) for c, s in result.states.items() if s.next_due is not None]
    heapq.heapify(due)
    for number, record in records:
        if isinstance(record, RecordError):
            result.dead_letters.append((number, str(record)))
            continue
        at = record_time(record)
        if at is not None:
            result.clock = at if result.clock is None else max(result.clock, at)
            _release_until(result, due, result.clock, policy)
        clock = result.clock if result.clock is not None else 0
        applied = apply_record(result.states.get(record.customer_id), record, clock, policy)
        if applied.problem:
            result.dead_letters.append((number, applied.problem))
        _keep(result, due, record.customer_id, applied)
    end = until if until is not None else result.clock
    if end is not None:
        _release_until(result, due, end, policy)
    return result


def _release_until(result: Replay, due: list[tuple[int, str]], clock: int, policy: Policy) -> None:
    while due and due[0][0] <= clock:
        due_at, customer_id = heapq.heappop(due)
        state = result.states.get(customer_id)
        if state is None or state.next_due != due_at:
            continue  # stale entry: the customer's held candidates changed since
        _keep(result, due, customer_id, apply_record(state, Due(customer_id), clock, policy))


def _keep(result: Replay, due: list[tuple[int, str]], customer_id: str, applied: Applied) -> None:
    result.collect(applied)
    if applied.state is None:
        result.states.pop(customer_id, None)
        return
    result.states[customer_id] = applied.state
    next_due = applied.state.next_due
    if next_due is not None:
        heapq.heappush(due, (next_due, customer_id))


def decision_line(decision: Decision) -> str:
    record = decision_to_dict(decision)
    record["decided_at"] = iso(decision.decided_at)
    if decision.release_at is not None:
        record["release_at"] = iso(decision.release_at)
    return json.dumps(record, separators=(",", ":"))


def transition_line(transition: Transition, policy_version: str) -> str:
    record = transition_to_dict(transition, policy_version)
    record["at"] = iso(transition.at)
    return json.dumps(record, separators=(",", ":"))


def signal_line(signal: Signal) -> str:
    record = signal_to_dict(signal)
    record["at"] = iso(signal.at)
    return json.dumps(record, separators=(",", ":"))


def run(
    events: TextIO,
    policy: Policy,
    out: TextIO,
    until: str | None = None,
    state_out: Path | None = None,
    dead_letters_out: TextIO | None = None,
    journeys_out: TextIO | None = None,
    signals_out: TextIO | None = None,
) -> Replay:
    until_ms = to_millis(until, "--until") if until else None
    with collector_off():
        result = replay(read_records(events), policy, until_ms)
    for decision in result.decisions:
        out.write(decision_line(decision) + "\n")
    if journeys_out is not None:
        for transition in result.transitions:
            journeys_out.write(transition_line(transition, policy.version) + "\n")
    if signals_out is not None:
        for signal in result.signals:
            signals_out.write(signal_line(signal) + "\n")
    if dead_letters_out is not None:
        for number, error in result.dead_letters:
            dead_letters_out.write(f"line {number}: {error}\n")
    if state_out is not None:
        states = {cid: state_as_json(s) for cid, s in sorted(result.states.items())}
        state_out.write_text(json.dumps(states, indent=1, sort_keys=True))
    return result
