"""The wall clock, read in one place: milliseconds since the Unix epoch, UTC, as the core counts.

The core never reads it (`now` is a parameter there); the worker passes it in.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
