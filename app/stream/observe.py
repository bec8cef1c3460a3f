"""Metrics from what runs did, counted once their results are durable (Prometheus).

The shell reports events here by name (faust's sensors are the model); nothing in the decision
path touches a metric. Labels are bounded: a reason that names a message is cut to its code.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from app.clock import now_ms
from app.metrics import Metrics
from app.policy.model import Applied, Category, Decision, Outcome, Transition
from app.policy.reasons import reason_label
from app.stream.holding import Holding

if TYPE_CHECKING:
    from app.stream.partition import PartitionRun


class Observer:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_decided(self, seconds: float) -> None:
        self.metrics.decide_seconds.observe(seconds)

    def on_durable(self, runs: list[PartitionRun], seconds: float) -> None:
        self.metrics.flush_seconds.observe(seconds)
        now = now_ms()
        for run in runs:
            self._count(run, now)
        self.metrics.batch_records.observe(sum(sum(run.read.values()) for run in runs))

    def _count(self, run: PartitionRun, now: int) -> None:
        m = self.metrics
        decisions: list[Decision] = []
        channels: Counter[str] = Counter()
        for work in run.work.values():
            for applied in work.results:
                decisions += applied.decisions
                for message in applied.outbound:
                    channels[message.channel] += 1
                self._count_journeys(applied.transitions)
                self._count_feedback(applied)
        self._count_decisions(decisions, now)
        for channel, count in channels.items():
            m.outbound.labels(channel).inc(count)
        for topic, count in run.read.items():
            m.records_in.labels(topic).inc(count)
        for letter in run.dead_letters:
            m.dead_letters.labels(letter.topic, letter.kind).inc()
        for kind, count in run.recovered.not_repeated.items():
            m.recovered.labels(kind).inc(count)
        run.recovered.not_repeated.clear()
        m.duplicates_ignored.inc(run.repeated)
        m.released.inc(run.released)

    def _count_decisions(self, decisions: list[Decision], now: int) -> None:
        """Counted first, then one update per label set: a metric call costs about a
        microsecond, and a run holds thousands of decisions."""
        m = self.metrics
        outcomes: Counter[tuple[Outcome, str, str | None, Category]] = Counter()
        costs: defaultdict[tuple[str, str, str], float] = defaultdict(float)
        for d in decisions:
            outcomes[d.outcome, d.reasons[0] if d.reasons else "", d.channel, d.category] += 1
            if d.cost:
                costs[d.channel or "", d.category.value, d.journey or ""] += d.cost
        m.decision_lag.observe_many([max(now - d.decided_at, 0) / 1000 for d in decisions])
        labelled: Counter[tuple[str, str, str, str]] = Counter()
        for (outcome, reason, sent_on, kind), count in outcomes.items():
            labelled[outcome.value, reason_label(reason), sent_on or "", kind.value] += count
        for labels, count in labelled.items():
            m.decisions.labels(*labels).inc(count)
        for (channel, category, journey), cost in costs.items():
            m.contact_cost.labels(channel, category, journey).inc(cost)

    def on_holding(self, partition: int, holding: Holding) -> None:
        self.metrics.deferred_backlog.labels(str(partition)).set(holding.held)
        for journey, live in holding.live.items():
            self.metrics.journey_instances.labels(journey, str(partition)).set(live)

    def on_revoked(self, partition: int, holding: Holding) -> None:
        with contextlib.suppress(KeyError):
            self.metrics.deferred_backlog.remove(str(partition))
        for journey in holding.live:
            with contextlib.suppress(KeyError):
                self.metrics.journey_instances.remove(journey, str(partition))

    def _count_journeys(self, transitions: tuple[Transition, ...]) -> None:
        for t in transitions:
            self.metrics.journey_transitions.labels(t.journey, t.step, t.kind).inc()
            if t.value is not None:
                self.metrics.journey_goal_value.labels(t.journey).inc(t.value)

    def _count_feedback(self, applied: Applied) -> None:
        for s in applied.signals:
            self.metrics.channel_switches.labels(s.from_channel, s.to_channel).inc()
        for score in applied.scores:
            labels = (score.kind, score.channel, score.journey)
            self.metrics.feedback_score.labels(*labels).observe(score.score)

    def on_assigned(self, partitions: int) -> None:
        self.metrics.assigned_partitions.set(partitions)

    def on_log_behind_state(self, topic: str, partition: int, behind: bool) -> None:
        self.metrics.log_behind_state.labels(topic, str(partition)).set(int(behind))
