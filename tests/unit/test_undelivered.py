"""A fetched tail that never reached the agent is read again, once it is clearly lost."""

from app.stream.undelivered import Undelivered

TP = ("customer.events", 0)


def test_a_consumer_ahead_of_what_was_applied_for_the_patience_is_read_again() -> None:
    watch = Undelivered(patience=2.0)
    ahead = {TP: 483}.get
    assert watch.check({TP: 379}, ahead, now=10.0) == {}
    assert watch.check({TP: 379}, ahead, now=11.0) == {}
    assert watch.check({TP: 379}, ahead, now=12.0) == {TP: 379}
    assert watch.check({TP: 379}, ahead, now=12.5) == {}  # patience starts over after a seek


def test_progress_or_a_consumer_not_ahead_is_left_alone() -> None:
    watch = Undelivered(patience=2.0)
    assert watch.check({TP: 100}, {TP: 150}.get, now=0.0) == {}
    assert watch.check({TP: 120}, {TP: 150}.get, now=3.0) == {}  # applied moved: wait again
    assert watch.check({TP: 150}, {TP: 150}.get, now=6.0) == {}  # caught up
    assert watch.check({TP: 150}, {}.get, now=9.0) == {}  # no position (not assigned)
