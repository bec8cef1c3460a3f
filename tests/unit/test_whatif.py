"""What-if: two policies over one log where the difference is known in advance."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from app.whatif import run_whatif

CAP = """version = "{name}"
[[caps]]
name = "promo_daily"
limit = {limit}
window = "24h"
categories = ["promo"]
"""
HEAVY, LIGHT, OTHERS = 30, 20, 10  # customers: 4 promos each, 1 promo each, no promo


def _candidate(n: int, customer: str, category: str, hour: int) -> dict:
    return {
        "kind": "candidate",
        "message_id": f"m{n}",
        "customer_id": customer,
        "category": category,
        "audience": "personal",
        "channels": ["email"],
        "urgency": "normal",
        "created_at": f"2026-11-02T{hour:02d}:{n % 60:02d}:00Z",
        "template": category,
    }


def known_log(path: Path) -> None:
    """Heavy customers get 4 promos in a day, light ones 1, the others none; all get 2
    service messages (which caps never hold)."""
    records, n = [], 0
    customers = [f"h{i}" for i in range(HEAVY)] + [f"l{i}" for i in range(LIGHT)]
    customers += [f"o{i}" for i in range(OTHERS)]
    for customer in customers:
        consents = {"email": True}
        records.append(
            {"kind": "profile", "customer_id": customer, "timezone": "UTC", "consents": consents}
        )
    for hour in (9, 11, 13, 15):
        for customer in customers:
            n += 1
            if customer[0] == "h" or (customer[0] == "l" and hour == 9):
                records.append(_candidate(n, customer, "promo", hour))
            if hour in (9, 15):
                n += 1
                records.append(_candidate(n, customer, "service", hour))
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def policies(tmp_path: Path) -> tuple[Path, Path]:
    current, candidate = tmp_path / "current.toml", tmp_path / "candidate.toml"
    current.write_text(CAP.format(name="current", limit=2))
    candidate.write_text(CAP.format(name="candidate", limit=1))
    return current, candidate


def test_lowering_the_daily_promo_cap_halves_promo_sends_of_those_who_hit_it(tmp_path):
    log = tmp_path / "inputs.jsonl"
    known_log(log)
    before, after = run_whatif(log, list(policies(tmp_path)))
    assert before.sends_by_category["promo"] == HEAVY * 2 + LIGHT
    assert after.sends_by_category["promo"] == HEAVY * 1 + LIGHT
    assert before.sends_by_category["service"] == after.sends_by_category["service"]
    assert after.sends_by_category["service"] == 2 * (HEAVY + LIGHT + OTHERS)
    changed = {
        c
        for c in before.sends_per_customer
        if before.sends_per_customer[c] != after.sends_per_customer[c]
    }
    assert changed == {f"h{i}" for i in range(HEAVY)}
    assert all(before.sends_per_customer[c] - after.sends_per_customer[c] == 1 for c in changed)
    assert after.not_sent_by_reason == {"cap:promo_daily": HEAVY * 3}
    assert before.not_sent_by_reason == {"cap:promo_daily": HEAVY * 2}
    assert not before.cap_breaches and not after.cap_breaches
    assert before.repeated_finals == after.repeated_finals == 0


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.open: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag not in ("meta",):
            self.open.append(tag)
        self.tables += tag == "table"

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()


def _whatif(log: Path, out: Path, *policy_files: Path):
    policy_args = [arg for path in policy_files for arg in ("--policy", str(path))]
    return CliRunner().invoke(
        main, ["whatif", "--events", str(log), *policy_args, "--out", str(out)]
    )


def test_whatif_command_writes_a_self_contained_report(tmp_path):
    log = tmp_path / "inputs.jsonl"
    known_log(log)
    current, candidate = policies(tmp_path)
    out = tmp_path / "report"
    result = _whatif(log, out, current, candidate)
    assert result.exit_code == 0, result.output
    service = 2 * (HEAVY + LIGHT + OTHERS)
    sent = rf"sent\s*│\s*{service + 2 * HEAVY + LIGHT}\s*│\s*{service + HEAVY + LIGHT}\s*│"
    assert re.search(sent, result.output), result.output
    page = _Page()
    page.feed((out / "report.html").read_text())
    assert page.open == ["html"] or page.open == []
    assert page.tables >= 3
    assert len(page.images) >= 4
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = (out / "report.md").read_text()
    assert "| customers over a cap (must be 0) | 0 | 0 |" in md
    for name in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (out / name).stat().st_size > 5000


def test_whatif_needs_two_policies_and_names_a_bad_one(tmp_path):
    log = tmp_path / "inputs.jsonl"
    known_log(log)
    current, _ = policies(tmp_path)
    one = _whatif(log, tmp_path / "r", current)
    assert one.exit_code == 2 and "at least twice" in one.output
    bad = tmp_path / "bad.toml"
    bad.write_text('version = "x"\n[[caps]]\nname = "c"\nlimit = -1\nwindow = "1h"\n')
    wrong = _whatif(log, tmp_path / "r", current, bad)
    assert wrong.exit_code == 1 and "limit" in wrong.output
