"""The what-if report: report.md, a self-contained report.html and the PNG charts they show."""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from app.whatif import Summary, most_changed

TOP_REASONS = 12


def headline(summaries: Sequence[Summary]) -> list[tuple[str, list[str]]]:
    """The side-by-side numbers: one row per measure, one value per policy."""

    def row(label: str, values: Sequence[object]) -> tuple[str, list[str]]:
        return label, [f"{v:,}" if isinstance(v, int) else str(v) for v in values]

    rows = [
        row("policy version", [s.version for s in summaries]),
        row("records", [s.records for s in summaries]),
        row("candidates decided", [s.candidates for s in summaries]),
        row("sent", [s.outcomes["sent"] for s in summaries]),
    ]
    for outcome in ("suppressed", "deduplicated", "expired", "cancelled"):
        rows.append(row(outcome, [s.outcomes[outcome] for s in summaries]))
    rows += [
        row("sends per customer-day p50", [s.percentile(0.5) for s in summaries]),
        row("sends per customer-day p95", [s.percentile(0.95) for s in summaries]),
        row("sends per customer-day max", [max(s.per_customer_day, default=0) for s in summaries]),
        row("goal value", [f"{sum(s.goal_value.values()):,.0f}" for s in summaries]),
        row("customers over a cap (must be 0)", [len(s.cap_breaches) for s in summaries]),
        row("several final decisions (must be 0)", [s.repeated_finals for s in summaries]),
        row("dead letters", [s.dead_letters for s in summaries]),
        row("replay seconds", [f"{s.seconds:.1f}" for s in summaries]),
    ]
    return rows


def invariants_hold(summaries: Sequence[Summary]) -> bool:
    return all(not s.cap_breaches and not s.repeated_finals for s in summaries)


def _names(summaries: Sequence[Summary]) -> list[str]:
    return [f"{Path(s.policy).name} ({s.version})" for s in summaries]


def grouped_bars(
    path: Path,
    title: str,
    names: Sequence[str],
    counts: Sequence[Counter[str]],
    keys: Sequence[str],
    horizontal: bool = False,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Path:
    """One bar per key and series, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(3.0, 0.35 * len(keys) * len(names) + 1) if horizontal else 4.0
    figure, axes = plt.subplots(figsize=(9, height))
    width = 0.8 / max(len(names), 1)
    for i, (name, count) in enumerate(zip(names, counts, strict=True)):
        positions = [k + i * width for k in range(len(keys))]
        values = [count.get(key, 0) for key in keys]
        if horizontal:
            axes.barh(positions, values, height=width, label=name)
        else:
            axes.bar(positions, values, width=width, label=name)
    ticks = [k + width * (len(names) - 1) / 2 for k in range(len(keys))]
    if horizontal:
        axes.set_yticks(ticks, list(keys))
        axes.invert_yaxis()
    else:
        axes.set_xticks(ticks, list(keys), rotation=30 if len(keys) > 6 else 0, ha="right")
    if xlabel:
        axes.set_xlabel(xlabel)
    if ylabel:
        axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def charts(summaries: Sequence[Summary], out: Path) -> list[tuple[str, Path]]:
    """Every chart of the report, written as PNG into `out`: (title, file)."""
    made = []

    def chart(
        name: str,
        title: str,
        counts: Sequence[Counter[str]],
        keys: Sequence[str],
        horizontal: bool = False,
    ) -> None:
        if keys:
            path = out / f"{name}.png"
            grouped_bars(path, title, _names(summaries), counts, keys, horizontal)
            made.append((title, path))

    per_day = [Counter(str(n) for n in s.per_customer_day) for s in summaries]
    most = max((max(s.per_customer_day, default=0) for s in summaries), default=0)
    chart(
        "per_customer_day",
        "Messages per customer per day (customer-days)",
        per_day,
        [str(n) for n in range(most + 1)],
    )
    channels = [s.sends_by_channel for s in summaries]
    chart("channels", "Sends by channel", channels, sorted(set().union(*channels)))
    categories = [s.sends_by_category for s in summaries]
    chart("categories", "Sends by category", categories, sorted(set().union(*categories)))
    for name, title, counts in (
        (
            "not_sent",
            "Not sent, by reason (final decisions)",
            [s.not_sent_by_reason for s in summaries],
        ),
        ("deferred", "Deferred, by reason", [s.deferred_by_reason for s in summaries]),
    ):
        total: Counter[str] = sum(counts, Counter())
        chart(name, title, counts, [k for k, _ in total.most_common(TOP_REASONS)], horizontal=True)
    for journey in sorted(set().union(*(s.funnels for s in summaries))):
        funnels = [s.funnels.get(journey, Counter()) for s in summaries]
        chart(
            f"journey_{journey}",
            f"Journey {journey}: transitions",
            funnels,
            _funnel_order(funnels),
            horizontal=True,
        )
    return made


def _funnel_order(funnels: Sequence[Counter[str]]) -> list[str]:
    """Entered first, steps in the order they first appear by count, the ends last."""
    kinds = set().union(*funnels)
    ends = ["converted", "exited", "timed_out", "refused"]
    steps = sorted(kinds - {"entered", *ends}, key=lambda k: -sum(f[k] for f in funnels))
    return [k for k in ["entered", *steps, *ends] if k in kinds]


def _table_md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _table_html(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _sections(summaries: Sequence[Summary]) -> list[tuple[str, list[str], list[list[str]]]]:
    names = _names(summaries)
    side_by_side = [[label, *values] for label, values in headline(summaries)]
    changed = [[c.customer_id, *(f"{n:,}" for n in c.sends)] for c in most_changed(summaries)]
    funnels = []
    for journey in sorted(set().union(*(s.funnels for s in summaries))):
        counts = [s.funnels.get(journey, Counter()) for s in summaries]
        funnels += [[journey, k, *(f"{c[k]:,}" for c in counts)] for k in _funnel_order(counts)]
        value = [f"{s.goal_value.get(journey, 0):,.0f}" for s in summaries]
        funnels.append([journey, "goal value", *value])
    checks = [
        [
            names[i],
            f"{len(s.cap_breaches):,}",
            ", ".join(s.cap_breaches[:5]) or "-",
            f"{s.repeated_finals:,}",
        ]
        for i, s in enumerate(summaries)
    ]
    return [
        ("Side by side", ["", *names], side_by_side),
        ("Customers whose outcome changed most (sends)", ["customer", *names], changed),
        ("Journey funnels", ["journey", "transition", *names], funnels),
        (
            "Invariants",
            ["policy", "customers over a cap", "e.g.", "several final decisions"],
            checks,
        ),
    ]


def write_report(summaries: Sequence[Summary], events: Path, out: Path) -> tuple[Path, Path]:
    """report.md (charts beside it) and report.html (charts inside it) in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    made = charts(summaries, out)
    verdict = "hold" if invariants_hold(summaries) else "DO NOT HOLD"
    intro = f"Inputs: {events} ({summaries[0].records:,} records). Invariants {verdict}."
    md = ["# What-if report", "", intro, ""]
    body = [f"<h1>What-if report</h1><p>{html.escape(intro)}</p>"]
    for title, header, rows in _sections(summaries):
        md += [f"## {title}", "", _table_md(header, rows) if rows else "(none)", ""]
        body.append(f"<h2>{html.escape(title)}</h2>")
        body.append(_table_html(header, rows) if rows else "<p>(none)</p>")
    md += ["## Charts", ""]
    body.append("<h2>Charts</h2>")
    for title, path in made:
        md += [f"![{title}]({path.name})", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        body.append(
            f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
        )
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text("\n".join(md))
    html_path.write_text(_page("\n".join(body)))
    return md_path, html_path


def _page(body: str) -> str:
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}figure{margin:1.5em 0}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Tact what-if report</title><style>{style}</style></head>"
        f"<body>{body}</body></html>\n"
    )
