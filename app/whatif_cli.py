"""`tact whatif` on the console: a progress bar while replaying, then the side-by-side table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.whatif import run_whatif
from app.whatif_report import headline, invariants_hold, write_report


def run_whatif_command(events: Path, policies: list[Path], out: Path) -> bool:
    """Replay, report, print; whether every invariant held."""
    console = Console(stderr=True)
    records = sum(1 for line in events.open() if line.strip())
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("replay", total=records * len(policies))
        summaries = run_whatif(events, policies, lambda n: progress.update(task, completed=n))
    md, html = write_report(summaries, events, out)
    table = Table(title=f"What-if on {records:,} records")
    table.add_column("")
    for path in policies:
        table.add_column(path.name, justify="right")
    for label, values in headline(summaries):
        table.add_row(label, *values)
    Console().print(table)
    console.print(f"report: {md} and {html}")
    return invariants_hold(summaries)
