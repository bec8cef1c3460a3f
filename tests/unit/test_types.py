"""Tact's values are immutable by type: mypy, not the runtime, rejects assigning to a field."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]


def mypy(*args: str) -> tuple[str, int]:
    out, err, status = api.run(["--config-file", str(ROOT / "pyproject.toml"), *args])
    return out + err, status


def test_tact_type_checks():
    report, status = mypy(str(ROOT / "app"))
    assert status == 0, report


def test_assigning_to_a_value_field_is_a_type_error(tmp_path):
    snippet = tmp_path / "mutate.py"
    snippet.write_text(
        "from app.policy.model import CustomerState\n"
        "state = CustomerState('c1')\n"
        "state.sends = ()\n"
    )
    report, status = mypy(str(snippet))
    assert status == 1 and 'Property "sends" defined in "CustomerState" is read-only' in report
