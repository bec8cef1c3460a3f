"""The bench's in-process measure of the worker's processor decides every record it is given."""

from __future__ import annotations

from app.bench.latency import latency_candidate
from app.bench.pipe import PARTITIONS
from app.bench.run import traffic
from app.bench.shell import as_fetched, as_sent, shell_costs
from app.client import encode_input
from app.clock import now_ms
from app.codecs.avro import Schemas
from app.config import TopicNames
from app.stream.consumer import InputRun


def test_every_record_and_code_goes_through_the_processor():
    topics, schemas = TopicNames.with_prefix("shell."), Schemas.load()
    records = traffic(50, 600, now_ms())
    encoded = [encode_input(r, topics, schemas) for r in records]
    costs = shell_costs(encoded, 50, "shell.", schemas, PARTITIONS, codes=300)
    candidates = sum(1 for r in records if r["kind"] == "candidate")
    assert costs.decisions == candidates + 300  # one decision record each, none lost
    assert costs.records_per_s > 0 and costs.code_us > 0


def test_fetches_hold_each_partition_in_order_and_at_most_their_size():
    topics, schemas = TopicNames.with_prefix("shell."), Schemas.load()
    encoded = [encode_input(r, topics, schemas) for r in traffic(50, 600, now_ms())]
    fetches = as_fetched(encoded, topics, PARTITIONS, 100)
    assert all(sum(len(run.records) for run in fetch) <= 100 for fetch in fetches)
    runs = [run for fetch in fetches for run in fetch]
    assert sum(len(run.records) for run in runs) == len(encoded)
    order = [topics.inputs.index(run.topic) for run in runs]
    assert order == sorted(order)  # profiles, then events, then candidates, as the worker reads
    assert_each_partition_in_offset_order(runs)


def test_a_load_sent_in_turn_is_fetched_in_the_order_it_was_sent():
    topics, schemas = TopicNames.with_prefix("shell."), Schemas.load()
    codes = [
        encode_input(
            {**latency_candidate(f"m{i}", f"c{i % 50}"), "lane": "urgent"}, topics, schemas
        )
        for i in range(200)
    ]
    fetches = as_sent(codes, PARTITIONS, 40)
    assert [sum(len(run.records) for run in fetch) for fetch in fetches] == [40] * 5
    for number, fetch in enumerate(fetches):  # the next 40 sent: 40 customers, each once
        keys = sorted(r.key for run in fetch for r in run.records)
        assert keys == sorted(codes[i].key for i in range(number * 40, number * 40 + 40))
        assert len(set(keys)) == 40
    assert_each_partition_in_offset_order([run for fetch in fetches for run in fetch])


def assert_each_partition_in_offset_order(runs: list[InputRun]) -> None:
    """Each partition's runs, one after the other, hold its offsets from 0 with no gap."""
    seen: dict[tuple[str, int], int] = {}
    for run in runs:
        start = seen.get((run.topic, run.partition), 0)
        offsets = [r.offset for r in run.records]
        assert offsets == list(range(start, start + len(offsets)))
        seen[(run.topic, run.partition)] = start + len(offsets)
