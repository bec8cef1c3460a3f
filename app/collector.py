"""Python's cycle collector, set for a process that decides records.

Deciding builds many small values that hold no reference cycles; reference counting frees each
one as soon as it is done with. The collector would still stop every 700 new objects to look for
cycles among them, and now and then walk the whole heap. Here it runs once 200,000 more objects
are alive than at its last run (Python counts objects made less objects freed), and what
start-up loaded (modules, the app, the policy) is never walked again. A worker also turns it off
while it decides a batch and makes it durable (processor.py): what a batch builds lives until
then, and is freed by reference counting right after. So the collector runs as the heap grows,
and seldom once it does not (the state cache full).

On `tact bench`'s engine phase (110,000 records; the cache filling with 10,000 customers), the
collector took 1.1-1.5 s of the worker's 10 s at 50,000 objects a run, on during batches; 0.45-
0.53 s with it off during batches; 0.24-0.48 s at 200,000 and off during batches.

What stays alive across batches is mostly the state cache: some 60 objects per customer, which
the collector walked at every run, and in the whole heap's walks (up to a second each, at the
latency load). A state is immutable, so it is never part of a cycle: `untrack` takes each state
the cache keeps out of the collector's sight (app/_acyclic.c; only what the state does not share
with the one before it is new). Over the bench's engine phase and two latency runs the collector
then took 0.5 s of the worker's time instead of 4.1 s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

try:
    from app._acyclic import untrack as untrack
except ImportError:  # installed without a C compiler: the collector walks them, as it would

    def untrack(value: object) -> int:
        """Take an immutable value, and all it holds, out of the cycle collector's sight."""
        return 0


THRESHOLDS = (200_000, 20, 20)  # young objects per collection; then collections per older one


@contextmanager
def collector_for_deciding() -> Iterator[None]:
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


@contextmanager
def collector_off() -> Iterator[None]:
    """For a replay, a process that ends when its file does, and in a worker for one batch:
    the values the core builds hold no cycles, so reference counting frees them all and the
    collector's walks buy nothing (a replay's walks of 100,000 customers' states were a fifth
    of its time)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
