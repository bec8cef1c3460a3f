"""A policy in plain words, for `tact policy check`."""

from __future__ import annotations

from app.policy.bounds import CHANGELOG_RECORD_LIMIT, worst_case_state_bytes
from app.policy.journey_rules import Journey, JourneyStep, StepTiming
from app.policy.rules import CapRule, CategoryRule, Policy


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"


def describe_policy(policy: Policy) -> str:
    lines = [
        f"policy {policy.version}: valid",
        f"  dedupe window: {_duration(policy.dedupe_window_ms)}",
    ]
    lines.append(f"  quiet hours: {_quiet_hours(policy)}")
    lines.append(f"  arbitration window: {_duration(policy.arbitration_window_ms)}")
    lines += [f"  {c.value}: {_category(rule)}" for c, rule in policy.categories.items()]
    lines += [f"  cap {cap.name}: {_cap(cap)}" for cap in policy.caps]
    order = sorted(policy.category_rank.items(), key=lambda kv: kv[1])
    lines.append(f"  priority: {' > '.join(c.value for c, _ in order)}")
    lines.append(f"  assumed reachable: {', '.join(sorted(policy.assume_reachable)) or 'none'}")
    lines.append(f"  limits per customer: {_limits(policy)}")
    lines += _channels(policy)
    for journey in policy.journeys:
        lines += _journey(journey)
    return "\n".join(lines)


def _journey(journey: Journey) -> list[str]:
    """A journey as its story: what starts it, each step and when, what ends it."""
    per = f"one per {journey.key}" if journey.key else "one per customer"
    ends = [f"goal {journey.goal} (converted)"] if journey.goal else []
    ends += [f"{e} (exited)" for e in sorted(journey.exit_on)]
    ends.append(f"{_duration(journey.max_duration_ms)} after entry (timed out)")
    lines = [f"  journey {journey.name}: starts on {journey.trigger}, {per}"]
    for number, step in enumerate(journey.steps, 1):
        skip = f"; skipped after {', '.join(sorted(step.skip_if))}" if step.skip_if else ""
        lines.append(
            f"    {number}. {step.name}: {_when(step.timing, number)} -> {step.template} by "
            f"{_step_channels(step)} ({step.category.value}, {step.urgency.value}){skip}"
        )
    lines.append(f"    ends on: {'; '.join(ends)}")
    return lines


def _step_channels(step: JourneyStep) -> str:
    listed = " or ".join(step.channels)
    return listed or f"the matrix's {step.purpose} channels"


def _channels(policy: Policy) -> list[str]:
    """The channel rules: how a channel is chosen, what it costs, when a send falls back."""
    rules = policy.channel_rules
    cheaper = ", cheaper first among equals" if rules.prefer_cheaper else ""
    lines = [f"  channel choice: {rules.choice}{cheaper}"]
    for row in rules.matrix:
        only = [f"urgency {row.urgency.value}"] if row.urgency else []
        only += [f"segment {row.segment}"] if row.segment else []
        where = f" ({', '.join(only)})" if only else ""
        lines.append(f"  matrix {row.purpose}{where}: {', '.join(row.channels)}")
    if rules.cost:
        lines.append("  cost: " + ", ".join(f"{c} {v:g}" for c, v in rules.cost.items()))
    after = ", ".join(
        f"{c} after {_duration(ms)} undelivered" for c, ms in rules.fallback_after.items()
    )
    on = "on delivery_failed or bounced" if rules.fallback else "off"
    lines.append(f"  fallback: {on}{'; ' + after if after else ''}")
    caps = "; ".join(f"{c.name} {_cap(c)}" for c in policy.detractor_caps) or "none"
    lines.append(
        f"  detractors (nps <= {rules.detractor_nps:g}, csat <= {rules.detractor_csat:g}) for "
        f"{_duration(rules.detractor_for_ms)}: {caps}"
    )
    return lines


def _when(timing: StepTiming, number: int) -> str:
    since = "entry" if number == 1 else "the previous step"
    if timing.after_ms is not None:
        return (
            "at once"
            if timing.after_ms == 0 and number == 1
            else (f"{_duration(timing.after_ms)} after {since}")
        )
    if timing.at_s is not None:
        day = {0: "the same day as", 1: "the day after"}.get(
            timing.day_offset, f"{timing.day_offset} days after"
        )
        return f"{_clock(timing.at_s)} local on {day} {since}"
    if timing.before_ms is not None:
        return f"{_duration(timing.before_ms)} before the trigger's {timing.of}"
    return f"when {timing.wait_for} arrives, within {_duration(timing.within_ms or 0)}"


def _quiet_hours(policy: Policy) -> str:
    quiet = policy.quiet_hours
    if not quiet:
        return "none"
    urgencies = ", ".join(sorted(u.value for u in quiet.urgencies)) or "no urgency (none held)"
    return f"{_clock(quiet.start_s)}-{_clock(quiet.end_s)} local, for {urgencies}"


def _category(rule: CategoryRule) -> str:
    caps = "bypasses caps" if rule.bypass_caps else "capped"
    counted = "counted" if rule.counts_toward_caps else "not counted"
    if not rule.requires_consent:
        consent = "no consent needed"
    else:
        consent = "opt-in consent" if rule.opt_in else "opt-out consent"
    return f"{caps}, {counted}, {consent}"


def _cap(cap: CapRule) -> str:
    span = (
        _duration(cap.window_ms) + " rolling" if cap.window_ms else f"per calendar {cap.calendar}"
    )
    scope = ", ".join(sorted(cap.channels)) or "all channels"
    categories = ", ".join(sorted(c.value for c in cap.categories)) or "all categories"
    return f"{cap.limit} {span}; {scope}; {categories}"


def _limits(policy: Policy) -> str:
    limits = policy.limits
    worst = worst_case_state_bytes(policy)
    return (
        f"{limits.max_messages_per_customer:,} messages per dedupe window, "
        f"{limits.max_pending_per_customer} held ({limits.max_held_bytes:,} bytes), "
        f"{limits.context_events} recent events, {limits.max_journeys_per_customer} journeys "
        f"live; a state stays under {worst:,} bytes "
        f"(a changelog record takes {CHANGELOG_RECORD_LIMIT:,})"
    )
