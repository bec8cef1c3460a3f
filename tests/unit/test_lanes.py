"""The two lanes of candidates (app/stream/lanes.py): what each durable write takes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.stream.consumer import Fetch, InputRun
from app.stream.lanes import Lanes

BULK, URGENT, EVENTS = "messages.candidates", "messages.candidates.urgent", "customer.events"


@dataclass
class Record:
    offset: int


def run(topic, partition, first, last):
    return InputRun(topic, partition, [Record(o) for o in range(first, last + 1)])


def spans(runs):
    return [(r.topic, r.partition, r.records[0].offset, r.records[-1].offset) for r in runs]


def test_everything_but_the_bulk_topic_goes_first_and_the_bulk_backlog_in_turn():
    lanes = Lanes(BULK, URGENT, per_write=3, limit=100, per_write_busy=3)
    first = lanes.next_write(
        [Fetch([run(EVENTS, 0, 0, 1), run(BULK, 0, 0, 4)]), Fetch([run(URGENT, 1, 7, 7)])],
        1,
        now=0.0,
    )
    assert spans(first) == [(EVENTS, 0, 0, 1), (URGENT, 1, 7, 7), (BULK, 0, 0, 2)]
    assert lanes.held == 2 and lanes.held_until() == {(BULK, 0): 5}
    second = lanes.next_write([Fetch([run(BULK, 1, 0, 1), run(URGENT, 1, 8, 8)])], 1, now=0.0)
    assert spans(second) == [(URGENT, 1, 8, 8), (BULK, 0, 3, 4), (BULK, 1, 0, 0)]
    assert spans(lanes.next_write([], 1, now=0.0)) == [(BULK, 1, 1, 1)]
    assert not lanes.waiting and lanes.held == 0 and lanes.held_until() == {}


def test_a_rebalance_drops_the_backlog_it_is_fetched_again():
    lanes = Lanes(BULK, URGENT, per_write=1, limit=100, per_write_busy=1)
    lanes.next_write([Fetch([run(BULK, 0, 0, 9)])], 1, now=0.0)
    assert spans(lanes.next_write([Fetch([run(BULK, 0, 4, 5)])], 2, now=0.0)) == [(BULK, 0, 4, 4)]
    assert lanes.held == 1


def test_a_partition_read_again_leaves_the_backlog():
    lanes = Lanes(BULK, URGENT, per_write=1, limit=100, per_write_busy=1)
    lanes.next_write([Fetch([run(BULK, 0, 0, 3), run(BULK, 1, 0, 3)])], 1, now=0.0)
    lanes.forget({(BULK, 1)})
    assert lanes.held == 3 and lanes.held_until() == {(BULK, 0): 4}


@pytest.mark.parametrize(
    ("paused", "held", "pause", "resume"),
    [
        (False, 10, False, False),
        (False, 11, True, False),
        (True, 11, False, False),
        (True, 6, False, False),
        (True, 5, False, True),
        (False, 0, False, False),
    ],
)
def test_the_bulk_topic_pauses_above_the_limit_and_resumes_at_half(paused, held, pause, resume):
    lanes = Lanes(BULK, URGENT, per_write=1, limit=10, per_write_busy=1, held=held, paused=paused)
    assert (lanes.should_pause(), lanes.should_resume()) == (pause, resume)


def test_while_urgent_candidates_keep_coming_the_backlog_goes_in_smaller_slices():
    lanes = Lanes(BULK, URGENT, per_write=5, limit=100, per_write_busy=2, busy_s=5.0)
    assert len(lanes.next_write([Fetch([run(BULK, 0, 0, 99)])], 1, now=0.0)) == 1
    assert lanes.held == 95
    lanes.next_write([Fetch([run(URGENT, 0, 0, 0)])], 1, now=10.0)
    assert lanes.held == 93  # two of the backlog with the urgent run
    lanes.next_write([], 1, now=14.9)
    assert lanes.held == 91
    lanes.next_write([], 1, now=15.0)  # five seconds without one
    assert lanes.held == 86
