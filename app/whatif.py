"""What-if: the same inputs replayed through several policies by the core the worker runs,
each policy in its own process, tallied into a Summary that a report compares."""

from __future__ import annotations

import gc
import multiprocessing
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.codecs.records import RecordError
from app.collector import collector_off
from app.policy.engine import Input
from app.policy.localtime import calendar_period, local
from app.policy.model import Applied, Category, Outcome
from app.policy.policy_file import load_policy
from app.policy.reasons import reason_label
from app.policy.rules import CapRule, Policy
from app.simulate import Replay, read_records, replay

PROGRESS_EVERY = 5000  # records between two progress updates


@dataclass
class Summary:
    """What one policy did with the inputs, in numbers a report can compare."""

    policy: str  # the file
    version: str
    records: int = 0
    dead_letters: int = 0
    seconds: float = 0.0
    candidates: int = 0  # that got a final decision
    outcomes: Counter[str] = field(default_factory=Counter)  # final decisions by outcome
    sends_by_channel: Counter[str] = field(default_factory=Counter)
    sends_by_category: Counter[str] = field(default_factory=Counter)
    not_sent_by_reason: Counter[str] = field(default_factory=Counter)  # first reason, final
    deferred_by_reason: Counter[str] = field(default_factory=Counter)
    sends_per_customer: dict[str, int] = field(default_factory=dict)
    per_customer_day: list[int] = field(default_factory=list)  # sends, per customer and day
    funnels: dict[str, Counter[str]] = field(default_factory=dict)  # journey -> transition kind
    goal_value: dict[str, float] = field(default_factory=dict)  # journey -> goal values summed
    cap_breaches: list[str] = field(default_factory=list)  # customers over a cap: must be none
    repeated_finals: int = 0  # candidates with more than one final decision: must be 0

    def percentile(self, share: float) -> int:
        ordered = sorted(self.per_customer_day)
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else 0


class Tally(Replay):
    """A Replay that counts what is decided instead of keeping every record."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy
        self.finals: set[str] = set()
        self.repeated = 0
        self.outcomes: Counter[str] = Counter()
        self.not_sent: Counter[str] = Counter()
        self.deferred: Counter[str] = Counter()
        self.sends: dict[str, list[tuple[int, str, Category]]] = defaultdict(list)
        self.decided_customers: set[str] = set()
        self.funnels: dict[str, Counter[str]] = defaultdict(Counter)
        self.goal_value: defaultdict[str, float] = defaultdict(float)

    def collect(self, applied: Applied) -> None:
        for decision in applied.decisions:
            if decision.outcome is Outcome.DEFERRED:
                self.deferred[reason_label(decision.reasons[0]) if decision.reasons else ""] += 1
                continue
            if decision.message_id in self.finals:
                self.repeated += 1
            self.finals.add(decision.message_id)
            self.decided_customers.add(decision.customer_id)
            self.outcomes[decision.outcome.value] += 1
            if decision.outcome is not Outcome.SENT:
                self.not_sent[reason_label(decision.reasons[0]) if decision.reasons else ""] += 1
        for message in applied.outbound:
            self.sends[message.customer_id].append(
                (message.sent_at, message.channel, message.category)
            )
        for transition in applied.transitions:
            step = f"{transition.kind}:{transition.step}" if transition.step else transition.kind
            self.funnels[transition.journey][step] += 1
            if transition.value is not None:
                self.goal_value[transition.journey] += transition.value

    def summary(self, path: str, records: int, seconds: float) -> Summary:
        zones = {c: s.profile.timezone for c, s in self.states.items() if s.profile}
        return Summary(
            policy=path,
            version=self.policy.version,
            records=records,
            dead_letters=len(self.dead_letters),
            seconds=seconds,
            candidates=len(self.finals),
            outcomes=self.outcomes,
            sends_by_channel=Counter(c for s in self.sends.values() for _, c, _ in s),
            sends_by_category=Counter(k.value for s in self.sends.values() for _, _, k in s),
            not_sent_by_reason=self.not_sent,
            deferred_by_reason=self.deferred,
            sends_per_customer={c: len(s) for c, s in self.sends.items()},
            per_customer_day=self._per_customer_day(zones),
            funnels=dict(self.funnels),
            goal_value=dict(self.goal_value),
            cap_breaches=cap_breaches(self.sends, zones, self.policy),
            repeated_finals=self.repeated,
        )

    def _per_customer_day(self, zones: dict[str, str]) -> list[int]:
        """Sends per customer per local day, for every customer that had a candidate decided
        (a day without a send counts as 0 only on the days the replay covers)."""
        days: Counter[tuple[str, str]] = Counter()
        for customer, sends in self.sends.items():
            tz = zones.get(customer, "UTC")
            for at, _, _ in sends:
                days[customer, local(at, tz).date().isoformat()] += 1
        silent = self.decided_customers - {customer for customer, _ in days}
        return sorted([*days.values(), *([0] * len(silent))])


def cap_breaches(
    sends: dict[str, list[tuple[int, str, Category]]], zones: dict[str, str], policy: Policy
) -> list[str]:
    """Customers who got more sends under a cap than its limit, in any window: checked from the
    sends alone, independently of how the core keeps its counts."""
    out = []
    for customer, sent in sends.items():
        capped = [s for s in sent if not policy.categories[s[2]].bypass_caps]
        if any(_breached(cap, capped, zones.get(customer, "UTC")) for cap in policy.caps):
            out.append(customer)
    return sorted(out)


def _breached(cap: CapRule, sent: list[tuple[int, str, Category]], tz: str) -> bool:
    times = sorted(at for at, channel, category in sent if cap.counts(channel, category))
    if len(times) <= cap.limit:
        return False
    if cap.window_ms is not None:  # the busiest window starts at a send
        return any(
            times[i + cap.limit] - times[i] < cap.window_ms for i in range(len(times) - cap.limit)
        )
    periods = Counter(calendar_period(at, tz, cap.calendar or "day") for at in times)
    return max(periods.values()) > cap.limit


class Counting:
    """Passes records through, counting them and reporting every PROGRESS_EVERY."""

    def __init__(
        self, records: Iterable[tuple[int, Input | RecordError]], tick: Callable[[int], None]
    ) -> None:
        self.records, self.tick, self.count = records, tick, 0

    def __iter__(self) -> Iterator[tuple[int, Input | RecordError]]:
        for record in self.records:
            self.count += 1
            if self.count % PROGRESS_EVERY == 0:
                self.tick(PROGRESS_EVERY)
            yield record
        self.tick(self.count % PROGRESS_EVERY)


_progress: Any = None  # this process's shared counter (set in each replaying process)


def _start_replaying(counter: Any) -> None:
    """In each replaying process: share the progress counter; no cycle collector at all (see
    collector_off: it stays off while the result is sent back and the states are freed)."""
    global _progress
    _progress = counter
    gc.disable()


def _tick(n: int) -> None:
    if _progress is not None:
        with _progress.get_lock():
            _progress.value += n


def replay_file(events: Path, policy_path: Path) -> Summary:
    """Replay one file through one policy (in a process of its own) and tally it."""
    policy = load_policy(policy_path)
    started = time.perf_counter()
    tally = Tally(policy)
    with events.open() as lines, collector_off():
        records = Counting(read_records(lines), _tick)
        replay(records, policy, into=tally)
        return tally.summary(str(policy_path), records.count, time.perf_counter() - started)


def run_whatif(
    events: Path, policies: list[Path], on_progress: Callable[[int], None] | None = None
) -> list[Summary]:
    """Replay `events` through every policy, in parallel; `on_progress` is called with the
    records replayed so far, over all policies, about ten times a second."""
    context = multiprocessing.get_context("spawn")  # no inherited threads, loops or sockets
    counter = context.Value("q", 0)
    with ProcessPoolExecutor(
        max_workers=len(policies),
        mp_context=context,
        initializer=_start_replaying,
        initargs=(counter,),
    ) as pool:
        futures: list[Future[Summary]] = [pool.submit(replay_file, events, p) for p in policies]
        while not all(f.done() for f in futures):
            if on_progress is not None:
                on_progress(counter.value)
            time.sleep(0.1)
        if on_progress is not None:
            on_progress(counter.value)
        return [f.result() for f in futures]


@dataclass(frozen=True)
class Changed:
    customer_id: str
    sends: tuple[int, ...]  # under each policy


def most_changed(summaries: Sequence[Summary], top: int = 10) -> list[Changed]:
    """The customers whose number of sends differs most between the first policy and another."""
    customers = set().union(*(s.sends_per_customer for s in summaries))
    rows = [Changed(c, tuple(s.sends_per_customer.get(c, 0) for s in summaries)) for c in customers]
    rows = [r for r in rows if len(set(r.sends)) > 1]
    rows.sort(key=lambda r: (-max(abs(n - r.sends[0]) for n in r.sends), r.customer_id))
    return rows[:top]
