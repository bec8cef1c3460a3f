"""The worker's durable writes over a run, read from its own /metrics before and after it.

Under the latency load the worker's CPU is near a core and it still falls behind: this says how
large its writes were (it takes every fetch queued meanwhile into one, so the further behind,
the larger), and per record how long it spent deciding and how long making it durable: the
outputs encoded and acknowledged, the changed states packed and sent to the changelog and
acknowledged, RocksDB written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.worker_process import summed


@dataclass(frozen=True)
class Writes:
    records_per_write: float  # input records per durable write, on average
    decide_us: float  # per input record: deciding (the core, decoding the records)
    write_us: float  # per input record: making the write durable, acknowledgements included

    @classmethod
    def between(cls, before: list[Any], after: list[Any]) -> Writes:
        """From two scrapes of a worker's /metrics (zeros if either went unanswered: the
        other alone would count the writes of the whole run before)."""

        def grown(name: str) -> float:
            return summed(after, name) - summed(before, name)

        writes, records = grown("tact_batch_records_count"), grown("tact_batch_records_sum")
        if not (before and after and writes and records):
            return cls(0.0, 0.0, 0.0)
        return cls(
            round(records / writes, 1),
            round(grown("tact_decide_seconds_sum") * 1e6 / records, 1),
            round(grown("tact_flush_seconds_sum") * 1e6 / records, 1),
        )
