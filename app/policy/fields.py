"""Reading typed fields out of a TOML document, with errors that name the file, line and field."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from app.policy.units import DAY, HOUR, MINUTE, SECOND

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
_UNIT_MS = {"ms": 1, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY, "w": 7 * DAY}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
_SEGMENT = re.compile(r"([A-Za-z0-9_]+)(?:\[(\d+)\])?")


class PolicyError(ValueError):
    """A policy document that cannot be used, with where and how to fix it."""


class FieldReader:
    """Checks each field where it is read; `fail` finds the field's line in the text."""

    def __init__(self, text: str, source: str) -> None:
        self.lines = text.splitlines()
        self.source = source

    def fail(self, path: str, problem: str) -> PolicyError:
        line = line_of(self.lines, path)
        where = f"{self.source}:{line}" if line else self.source
        return PolicyError(f"{where}: {path}: {problem}")

    def table(self, doc: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = doc.get(path.split(".")[-1], {}) if path else doc
        if not isinstance(value, dict):
            raise self.fail(path, "must be a table, e.g. [" + path + "]")
        self.check_keys(value, path, allowed)
        return value

    def duration(self, value: Any, path: str) -> int:
        match = _DURATION.match(value) if isinstance(value, str) else None
        if not match:
            raise self.fail(path, f'{value!r} is not a duration (write e.g. "90s", "24h", "7d")')
        return int(match.group(1)) * _UNIT_MS[match.group(2)]

    def bounded_duration(self, value: Any, path: str, least: str, most: str, why: str) -> int:
        ms = self.duration(value, path)
        if not self.duration(least, path) <= ms <= self.duration(most, path):
            raise self.fail(path, f"{value!r} must be from {least} to {most}: {why}")
        return ms

    def clock(self, value: Any, path: str) -> int:
        match = _CLOCK.match(value) if isinstance(value, str) else None
        if not match:
            raise self.fail(path, f'{value!r} is not a time of day (write e.g. "21:00")')
        hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"{value!r} must be true or false")
        return value

    def integer(self, value: Any, path: str, least: int = 1, most: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise self.fail(path, f"{value!r} must be a whole number >= {least}")
        if most is not None and value > most:
            raise self.fail(path, f"{value!r} is more than {most:,}, the most Tact allows here")
        return value

    def number(self, value: Any, path: str, least: float, most: float) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, f"{value!r} must be a number")
        if not least <= value <= most:
            raise self.fail(path, f"{value!r} must be from {least:g} to {most:g}")
        return float(value)

    def one_of(self, value: Any, path: str, known: tuple[str, ...]) -> str:
        if value not in known:
            raise self.fail(path, f"{value!r} is not one of: {', '.join(known)}")
        return str(value)

    def choices(self, value: Any, path: str, known: tuple[str, ...]) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(path, f"must be a list of names from: {', '.join(known)}")
        for item in value:
            self.one_of(item, path, known)
        if len(set(value)) != len(value):
            raise self.fail(path, "lists a name twice")
        return list(value)

    def ranking(self, value: Any, path: str, known: tuple[str, ...]) -> list[str]:
        names = self.choices(value, path, known)
        if sorted(names) != sorted(known):
            raise self.fail(path, f"must rank every one of: {', '.join(known)}")
        return names

    def check_keys(self, item: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
        for key in item:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                fix = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(allowed)}"
                raise self.fail(f"{path}.{key}" if path else key, f"unknown key ({fix})")


def line_of(lines: list[str], path: str) -> int | None:
    """The 1-based line of a field such as `caps[1].limit` or `arbitration.window`: the key is
    looked for inside its own table (the i-th [[caps]], [arbitration]), not anywhere."""
    segments = _SEGMENT.findall(path)
    lo, hi, header_line = 0, len(lines), None
    dotted: list[str] = []
    for name, index in segments[:-1]:
        dotted.append(name)
        found = _table_range(lines, ".".join(dotted), index, lo, hi)
        if found is None:
            return None
        lo, hi = found
        header_line = lo
    key = segments[-1][0] if segments else ""
    pattern = re.compile(
        rf"^\s*{re.escape(key)}\s*=|^\s*\[+{re.escape('.'.join([*dotted, key]))}\]"
    )
    for n in range(lo, hi):
        if pattern.match(lines[n]):
            return n + 1
        if n > lo and lines[n].lstrip().startswith("["):
            break  # the table's own keys come before its sub-tables
    return header_line


def _table_range(
    lines: list[str], header: str, index: str, lo: int, hi: int
) -> tuple[int, int] | None:
    """Lines of table `header` (the index-th one of an array of tables) within [lo, hi)."""
    if index:
        starts = [n for n in range(lo, hi) if lines[n].strip() == f"[[{header}]]"]
        if len(starts) <= int(index):
            return None
        start = starts[int(index)]
        later = [n for n in starts if n > start]
        return start, later[0] if later else hi
    header_at = next((n for n in range(lo, hi) if lines[n].strip() == f"[{header}]"), None)
    return (lo, hi) if header_at is None else (header_at, hi)
