"""`tact demo` as a newcomer runs it: every story row reaches its final decision whatever the
hour, the chart is a real PNG, and nothing is left in the temporary folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_the_demo_tells_the_whole_story_and_cleans_up(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    chart = tmp_path / "day.png"
    env = {**os.environ, "TMPDIR": str(scratch), "COLUMNS": "80"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "demo",
            "--customers",
            "60",
            "--candidates",
            "400",
            "--chart",
            str(chart),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert max(len(line) for line in out.splitlines()) <= 80
    for message, ending in [
        ("anna-offer-1-retry", "deduplicated"),
        ("ben-newsletter", "suppr"),
        ("ghost-offer", "suppr"),
        ("dora-offer", "sent email"),
    ]:
        row = next(line for line in out.splitlines() if message in line)
        assert ending in row, row
    assert re.search(r"cap:rolling_24h", out) and "quiet_hours" in out
    assert "exited" in out and "dead letter" in out
    png = chart.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert list(scratch.iterdir()) == []
