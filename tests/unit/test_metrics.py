"""Metrics the worker counts a batch at a time export what per-value counting would."""

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from app.metrics import BulkHistogram

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def exposition(registry: CollectorRegistry) -> list[str]:
    lines = generate_latest(registry).decode().splitlines()
    return [line for line in lines if "_created" not in line]


@given(
    st.lists(
        st.lists(st.floats(min_value=0, max_value=1_000, allow_nan=False), max_size=20),
        max_size=5,
    )
)
def test_a_bulk_histogram_exports_what_a_histogram_observing_each_value_does(
    batches: list[list[float]],
) -> None:
    one_by_one, bulk = CollectorRegistry(), CollectorRegistry()
    histogram = Histogram("lag_seconds", "lag", registry=one_by_one, buckets=BUCKETS)
    batched = BulkHistogram("lag_seconds", "lag", BUCKETS, bulk)
    for batch in batches:
        for value in batch:
            histogram.observe(value)
        batched.observe_many(batch)
    assert exposition(bulk) == exposition(one_by_one)
