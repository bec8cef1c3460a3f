"""The demo's simulated day: a crowd's candidates over 24 hours through the core, offline, so
every one reaches its final decision (quiet hours end, caps free up) whatever the hour the demo
runs; and the chart of what each customer would get with Tact's policy and without it."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from app.policy.model import HOUR
from app.policy.rules import Policy
from app.simulate import parse_record, replay
from app.traffic import Mix, activity, random_profiles
from app.whatif import Summary, Tally
from app.whatif_report import grouped_bars

DAY = 24 * HOUR
DAY_MIX = Mix(event_share=0.1, channels=(1, 3), dedupe_share=0.2)


@dataclass(frozen=True)
class Day:
    summary: Summary  # what the policy did
    offered: Counter[str]  # candidates per customer: what each would get without a policy


def simulate_day(
    policy: Policy, customers: int, candidates: int, start: int, zones: list[str], seed: int = 5
) -> Day:
    rng = random.Random(seed)
    records = random_profiles(rng, customers, zones)
    records += activity(rng, customers, candidates, start, DAY, prefix="day-", mix=DAY_MIX)
    tally = Tally(policy)
    replay(enumerate((parse_record(r) for r in records), 1), policy, start + 2 * DAY, into=tally)
    offered = Counter(r["customer_id"] for r in records if r["kind"] == "candidate")
    return Day(tally.summary("policy", len(records), 0.0), offered)


def bombing_chart(day: Day, path: Path) -> Path:
    """Messages per customer in the day: every candidate sent (no policy) beside Tact's sends."""
    with_policy = Counter(str(n) for n in day.summary.sends_per_customer.values())
    silent = set(day.offered) - set(day.summary.sends_per_customer)
    with_policy["0"] += len(silent)
    without = Counter(str(n) for n in day.offered.values())
    most = max(int(n) for n in (*with_policy, *without))
    keys = [str(n) for n in range(most + 1)]
    return grouped_bars(
        path,
        "Messages per customer in one day",
        ["without a contact policy", f"with Tact ({day.summary.version})"],
        [without, with_policy],
        keys,
        xlabel="messages in the day",
        ylabel="customers",
    )
