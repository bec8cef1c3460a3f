"""Python's cycle collector, set for a process that decides records.

Deciding builds many small values that hold no reference cycles; reference counting frees each
one as soon as it is done with. The collector would still stop every 700 new objects to look for
cycles among them, and now and then walk the whole heap. In a worker under load that was 44 ms
a walk and about 5% of its time. Here young objects are looked at 70 times less often, and what
start-up loaded (modules, the app, the policy) is never walked again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

THRESHOLDS = (50_000, 20, 20)  # young objects per collection; then collections per older one


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
    """For a replay, a process that ends when its file does: the values the core builds hold
    no cycles, so reference counting frees them all and the collector's walks of a heap of
    100,000 customers' states (a fifth of a replay's time) buy nothing."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
