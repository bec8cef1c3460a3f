"""The probes' answers: live while the loop turns; ready once every assigned partition is."""

from __future__ import annotations

from app.stream.health import STALLED_S, Health


def test_live_until_the_loop_stalls():
    now = [100.0]
    health = Health(clock=lambda: now[0])
    assert health.live() == (True, "starting")
    health.heartbeat()
    now[0] += STALLED_S - 1
    assert health.live() == (True, "ok")
    now[0] += 2
    alive, why = health.live()
    assert not alive and "has not turned for 31 s" in why
    assert health.ready()[0] is False


def test_ready_once_assigned_partitions_are_recovered_and_no_rebalance_runs():
    waiting: set[int] = {2, 5}
    rebalancing = [False]
    health = Health(rebalancing=lambda: rebalancing[0], waiting=lambda: waiting)
    health.heartbeat()
    assert health.ready() == (False, "no partitions assigned yet")
    health.assigned_once = True
    assert health.ready() == (False, "partitions [2, 5] are recovering")
    waiting.clear()
    assert health.ready() == (True, "ok")
    rebalancing[0] = True
    assert health.ready() == (False, "rebalancing")
