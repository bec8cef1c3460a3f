"""The state cache: least recently used out first, per partition, only what it was given."""

from __future__ import annotations

import gc
from types import BuiltinFunctionType

from app.codecs.state import PackedState, pack_state
from app.collector import untrack
from app.policy.model import CustomerState
from app.stream.cache import StateCache


def state(customer_id: str) -> PackedState:
    return pack_state(CustomerState(customer_id))


def test_the_least_recently_used_customer_leaves_first():
    cache = StateCache(2)
    cache.put(0, "a", state("a"))
    cache.put(0, "b", state("b"))
    assert cache.get(0, "a") == state("a")  # "a" is now the most recently used
    cache.put(0, "c", state("c"))
    assert cache.get(0, "b") is None
    assert (cache.get(0, "a"), cache.get(0, "c")) == (state("a"), state("c"))
    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (3, 1)


def test_a_customer_is_found_only_under_the_partition_it_was_cached_for():
    cache = StateCache(10)
    cache.put(3, "a", state("a"))
    assert cache.get(4, "a") is None
    assert cache.get(3, "a") == state("a")


def test_nothing_stored_means_nothing_cached():
    cache = StateCache(10)
    cache.put(0, "a", state("a"))
    cache.put(0, "a", None)  # the customer's state was deleted
    assert cache.get(0, "a") is None and len(cache) == 0


def test_dropping_partitions_keeps_the_others():
    cache = StateCache(10)
    for partition, customer in [(0, "a"), (1, "b"), (2, "c")]:
        cache.put(partition, customer, state(customer))
    cache.drop_partitions([0, 2])
    assert [cache.get(p, c) for p, c in [(0, "a"), (1, "b"), (2, "c")]] == [None, state("b"), None]


def test_a_capacity_of_zero_caches_nothing():
    cache = StateCache(0)
    cache.put(0, "a", state("a"))
    assert cache.get(0, "a") is None and len(cache) == 0


def test_what_the_cache_keeps_is_out_of_the_collectors_sight_where_untrack_is_built():
    kept = state("a")
    assert gc.is_tracked(kept.state)
    StateCache(10).put(0, "a", kept)
    assert gc.is_tracked(kept.state) is not isinstance(untrack, BuiltinFunctionType)
