"""A policy in plain words, for `tact policy check`."""

from __future__ import annotations

from app.policy.rules import Policy


def _duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _clock(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}"


def describe_policy(policy: Policy) -> str:
    lines = [f"policy {policy.version}: valid"]
    lines.append(f"  dedupe window: {_duration(policy.dedupe_window_ms)}")
    quiet = policy.quiet_hours
    if quiet:
        urgencies = ", ".join(sorted(u.value for u in quiet.urgencies))
        lines.append(
            f"  quiet hours: {_clock(quiet.start_s)}-{_clock(quiet.end_s)} local, for {urgencies}"
        )
    else:
        lines.append("  quiet hours: none")
    lines.append(f"  arbitration window: {_duration(policy.arbitration_window_ms)}")
    for category, rule in policy.categories.items():
        caps = "bypasses caps" if rule.bypass_caps else "capped"
        counted = "counted" if rule.counts_toward_caps else "not counted"
        lines.append(f"  {category.value}: {caps}, {counted}")
    for cap in policy.caps:
        span = (
            _duration(cap.window_ms) + " rolling"
            if cap.window_ms
            else f"per calendar {cap.calendar}"
        )
        scope = ", ".join(sorted(cap.channels)) or "all channels"
        categories = ", ".join(sorted(c.value for c in cap.categories)) or "all categories"
        lines.append(f"  cap {cap.name}: {cap.limit} {span}; {scope}; {categories}")
    order = " > ".join(
        c.value for c, _ in sorted(policy.category_rank.items(), key=lambda kv: kv[1])
    )
    lines.append(f"  priority: {order}")
    return "\n".join(lines)
