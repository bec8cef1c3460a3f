"""The cache of recently seen customers' states."""

from __future__ import annotations

from app.policy.model import CustomerState
from app.stream.cache import StateCache


def state(customer_id: str) -> CustomerState:
    return CustomerState(customer_id)


def test_the_least_recently_used_customer_leaves_first():
    cache = StateCache(2)
    cache.put(0, "a", state("a"))
    cache.put(0, "b", state("b"))
    assert cache.get(0, "a") == state("a")  # a is now the most recent
    cache.put(1, "c", state("c"))
    assert cache.get(0, "b") is None
    assert cache.get(0, "a") == state("a") and cache.get(1, "c") == state("c")


def test_a_forgotten_customer_is_no_longer_cached():
    cache = StateCache(10)
    cache.put(0, "a", state("a"))
    cache.put(0, "a", None)
    assert cache.get(0, "a") is None and len(cache) == 0


def test_dropping_a_partition_keeps_the_others():
    cache = StateCache(10)
    cache.put(0, "a", state("a"))
    cache.put(1, "b", state("b"))
    cache.drop_partition(0)
    assert cache.get(0, "a") is None and cache.get(1, "b") == state("b")


def test_size_zero_caches_nothing():
    cache = StateCache(0)
    cache.put(0, "a", state("a"))
    assert cache.get(0, "a") is None
