"""The decide agent under Faust's test_context(): runs of records in, outputs and state out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

import msgpack
import pytest
from faust.types import TP

from app.codecs.avro import Schemas
from app.codecs.state import decode_state, encode_state
from app.config import Settings
from app.policy.history import Expiring, SendLog
from app.policy.model import CustomerState, Outcome
from app.policy.policy_file import load_policy
from app.stream.app import build_app
from app.stream.consumer import Fetch, InputRun
from app.stream.io import TailRecord
from app.stream.store import CHECKPOINT_KEY, due_key, state_key
from tests.builders import T0, at

SCHEMAS = Schemas.load()


@dataclass
class Record:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0


def profile(customer_id="c1", timezone="UTC"):
    return SCHEMAS["tact.CustomerProfile"].encode(
        {
            "customer_id": customer_id,
            "timezone": timezone,
            "consents": {"email": True, "sms": True},
            "reachable": {"email": True, "sms": True},
            "preferred_channel": None,
        }
    )


def candidate(message_id, customer_id="c1", created_at=T0, urgency="immediate", category="promo"):
    return SCHEMAS["tact.Candidate"].encode(
        {
            "message_id": message_id,
            "customer_id": customer_id,
            "category": category,
            "audience": "mass",
            "priority": None,
            "channels": ["email", "sms"],
            "urgency": urgency,
            "dedupe_key": None,
            "created_at": created_at,
            "expires_at": None,
            "template": "t",
            "payload": {},
        }
    )


@pytest.fixture
def app():
    return component_app()


def component_app(
    state_cache_customers=0, io=None, store=None, policy=None, fetch_max_records=5000
):
    """An app on in-memory stores that owns partition 0, its clock stopped at T0."""
    settings = Settings(
        store="memory://",
        fetch_max_records=fetch_max_records,
        app_id="tact-component",
        partitions=1,
        metrics_port=0,
        state_cache_customers=state_cache_customers,
    )
    app = build_app(settings, io=io, store=store, policy=policy)
    app.processor.parts.clock = lambda: T0
    app.processor.assign([0])
    return app


def decisions(app):
    codec = SCHEMAS["tact.Decision"]
    return [codec.decode(v) for v in app.io.values(app.tact_settings.topics.decisions)]


async def put(agent, topic, partition, *values, key=b"c1", first_offset=0, wait=True):
    """Records on the (in-memory) input log, and the fetch that brings them to the agent."""
    records = [Record(first_offset + i, key, v) for i, v in enumerate(values)]
    log = agent.app.io.logs[(topic, partition)]
    for record in records[len(log) - first_offset :] if len(log) > first_offset else records:
        log.append(TailRecord(len(log), record.key, record.value))
    await agent.put(Fetch([InputRun(topic, partition, records)]), wait=wait)


async def test_a_run_is_decided_published_stored_and_committed(app):
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"), candidate("m2"), candidate("m3"))
    assert [(d["message_id"], d["outcome"]) for d in decisions(app)] == [
        ("m1", "sent"),
        ("m2", "sent"),
        ("m3", "suppressed"),
    ]
    outbound = [
        SCHEMAS["tact.OutboundMessage"].decode(v) for v in app.io.values(topics.outbound["email"])
    ]
    assert [m["message_id"] for m in outbound] == ["m1", "m2"]
    state = decode_state(app.processor.parts.store.get(0, state_key("c1")))
    assert set(state.decided) == {"m1", "m2", "m3"}
    assert app.committed == {(topics.profiles, 0): 1, (topics.candidates, 0): 3}
    checkpoint = msgpack.unpackb(app.processor.parts.store.get(0, CHECKPOINT_KEY))
    assert checkpoint[topics.decisions] == 3 and checkpoint[topics.outbound["email"]] == 2


async def test_bad_records_become_dead_letters_and_good_ones_around_them_are_decided(app):
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(
            agent,
            topics.candidates,
            0,
            candidate("m1"),
            b"\x00garbage",
            candidate("m2"),
            candidate("m3", customer_id="someone-else"),
        )
    assert [d["message_id"] for d in decisions(app)] == ["m1", "m2"]
    letters = [SCHEMAS["tact.DeadLetter"].decode(v) for v in app.io.values(topics.dead_letters)]
    assert next((d["source_offset"], d["value"][:8]) for d in letters) == (1, b"\x00garbage")
    assert "is not tact.Candidate (expected id 2)" in letters[0]["error"]
    assert "is not the customer_id 'someone-else'" in letters[1]["error"]


async def test_redelivered_run_is_not_decided_twice(app):
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"))
        await put(agent, topics.candidates, 0, candidate("m1"))  # at-least-once redelivery
    assert [d["message_id"] for d in decisions(app)] == ["m1"]
    assert len(app.io.values(topics.outbound["email"])) == 1


async def test_held_candidate_is_indexed_and_released_by_the_timer_path(app):
    topics = app.tact_settings.topics
    evening = at(10)  # 22:00 in Europe/Berlin
    app.processor.parts.clock = lambda: evening
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile(timezone="Europe/Berlin"))
        await put(
            agent, topics.candidates, 0, candidate("m1", created_at=evening, urgency="normal")
        )
    [deferred] = decisions(app)
    assert deferred["outcome"] == "deferred" and deferred["release_at"] == at(20)
    assert app.processor.parts.store.get(0, due_key(at(20), "c1")) == b""
    assert app.processor.owned[0].holding.held == 1
    app.processor.parts.clock = lambda: at(20) + 500
    app.processor.assign([0])
    assert await app.processor.release_due() == 1
    assert [d["outcome"] for d in decisions(app)] == ["deferred", "sent"]
    assert app.processor.parts.store.get(0, due_key(at(20), "c1")) is None
    assert app.processor.owned[0].holding.held == 0
    registry = app.processor.parts.observer.metrics.registry
    assert registry.get_sample_value("tact_released_candidates_total") == 1
    sent = {"outcome": "sent", "reason": "", "channel": "email", "category": "promo"}
    assert registry.get_sample_value("tact_decisions_total", sent) == 1


def crash_after_outputs(app):
    """What a crash between publishing outputs and writing state leaves: the outputs only."""
    topics, store = app.tact_settings.topics, app.processor.parts.store
    before = decode_state(store.get(0, state_key("c1")))
    store.partitions[0][state_key("c1")] = encode_state(
        replace(before, decided=Expiring(), sends=SendLog())
    )
    store.partitions[0][CHECKPOINT_KEY] = msgpack.packb({t: 0 for t in topics.outputs})


def restart(app):
    return component_app(io=app.io, store=app.processor.parts.store)


async def test_outputs_published_before_a_crash_are_adopted_not_repeated(app):
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"))
    crash_after_outputs(app)
    app.io.logs[(topics.decisions, 0)].clear()  # the decision record was lost as well
    restarted = restart(app)
    async with restarted.decide_agent.test_context() as agent:
        await put(agent, topics.candidates, 0, candidate("m1"))  # redelivered after the crash
    assert len(app.io.values(topics.outbound["email"])) == 1
    [rebuilt] = decisions(restarted)
    assert (rebuilt["message_id"], rebuilt["outcome"], rebuilt["reasons"]) == (
        "m1",
        Outcome.SENT.value,
        ["recovered_from_outbound"],
    )
    assert "m1" in decode_state(app.processor.parts.store.get(0, state_key("c1"))).decided


async def test_checkpoint_waits_for_adoption_across_a_second_crash(app):
    """After a crash, other input is decided before the candidate comes round again; a second
    crash then must still find the first decision, or the candidate would be decided twice."""
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"))
    crash_after_outputs(app)
    second = restart(app)
    async with second.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile("c2"), key=b"c2", first_offset=1)
    checkpoint = msgpack.unpackb(app.processor.parts.store.get(0, CHECKPOINT_KEY))
    assert checkpoint[topics.decisions] == 0, "must not pass the decision not adopted yet"
    third = restart(second)
    async with third.decide_agent.test_context() as agent:
        await put(agent, topics.candidates, 0, candidate("m1"))
    assert [d["message_id"] for d in decisions(app)] == ["m1"]
    assert len(app.io.values(topics.outbound["email"])) == 1
    checkpoint = msgpack.unpackb(app.processor.parts.store.get(0, CHECKPOINT_KEY))
    assert checkpoint[topics.decisions] == 1


async def test_records_fetched_twice_are_decided_once(app):
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"), candidate("m2"))
        await put(agent, topics.candidates, 0, candidate("m1"), candidate("m2"), candidate("m3"))
    assert [d["message_id"] for d in decisions(app)] == ["m1", "m2", "m3"]
    checkpoint = msgpack.unpackb(app.processor.parts.store.get(0, CHECKPOINT_KEY))
    assert checkpoint[topics.candidates] == 3 and checkpoint[topics.profiles] == 1
    assert app.committed[(topics.candidates, 0)] == 3


async def test_a_gap_in_the_offsets_is_read_again_not_passed_over(app):
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"))
        await put(agent, topics.candidates, 0, candidate("m3"), first_offset=2)  # 1 is missing
        assert [d["message_id"] for d in decisions(app)] == ["m1"]
        assert app.committed[(topics.candidates, 0)] == 1, "nothing committed past the gap"
        await put(agent, topics.candidates, 0, candidate("m2"), candidate("m3"), first_offset=1)
    assert [d["message_id"] for d in decisions(app)] == ["m1", "m2", "m3"]
    assert app.committed[(topics.candidates, 0)] == 3


@pytest.fixture
def cached_app():
    return component_app(state_cache_customers=100)


async def test_a_customer_is_cached_from_its_second_run_and_the_cache_matches_the_store(
    cached_app,
):
    app = cached_app
    topics = app.tact_settings.topics
    registry = app.processor.parts.observer.metrics.registry

    def reads():
        return {
            source: registry.get_sample_value("tact_state_reads_total", {"source": source})
            for source in ("cache", "store")
        }

    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        assert (
            len(app.processor.parts.cache) == 0
        )  # a customer seen once would only push others out
        await put(agent, topics.candidates, 0, candidate("m1"))
        assert reads() == {"cache": 0, "store": 2}
        await put(agent, topics.candidates, 0, candidate("m2"), first_offset=1)
    assert reads() == {"cache": 1, "store": 2}
    assert registry.get_sample_value("tact_state_cache_customers") == 1
    raw = app.processor.parts.store.get(0, state_key("c1"))
    stored, cached = decode_state(raw), app.processor.parts.cache.get(0, "c1")
    assert cached.state == stored and set(stored.decided) == {"m1", "m2"}
    assert cached.data == raw  # the bytes its next write starts from
    await app.processor.revoke([0])
    assert len(app.processor.parts.cache) == 0


async def test_a_failed_write_leaves_nothing_cached_that_the_store_may_not_hold(cached_app):
    app = cached_app
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m0"))
    assert len(app.processor.parts.cache) == 1

    async def write_part_then_fail(changes, failpoint):
        raise ConnectionError("the changelog went away after some partitions were written")

    app.processor.parts.store.write = write_part_then_fail
    run = InputRun(topics.candidates, 0, [Record(1, b"c1", candidate("m1"))])
    with pytest.raises(ConnectionError):
        await app.processor.process([run])
    assert len(app.processor.parts.cache) == 0


async def test_without_a_cache_every_state_is_read_from_the_store(app):
    topics = app.tact_settings.topics
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"))
    registry = app.processor.parts.observer.metrics.registry
    assert registry.get_sample_value("tact_state_reads_total", {"source": "store"}) == 2
    assert len(app.processor.parts.cache) == 0


async def test_a_release_burst_goes_in_chunks_and_input_is_decided_between_them(app):
    """09:00 for a whole time zone: held work is released RELEASE_CHUNK customers per durable
    write, and a batch that arrives meanwhile does not wait for the whole burst."""
    from app.stream.release import RELEASE_CHUNK

    topics = app.tact_settings.topics
    evening, morning = at(10), at(20) + 1000  # 22:00 and 09:00 in Europe/Berlin
    customers = [f"c{i}" for i in range(2 * RELEASE_CHUNK + 500)]
    app.processor.parts.clock = lambda: evening
    async with app.decide_agent.test_context() as agent:
        for n, customer in enumerate(customers):
            await put(
                agent,
                topics.profiles,
                0,
                profile(customer, "Europe/Berlin"),
                key=customer.encode(),
                first_offset=n,
            )
        for n, customer in enumerate(customers):
            held = candidate(f"m-{customer}", customer, created_at=evening, urgency="normal")
            await put(agent, topics.candidates, 0, held, key=customer.encode(), first_offset=n)
    app.processor.parts.clock = lambda: morning
    release = asyncio.create_task(app.processor.release_due())
    await asyncio.sleep(0)  # the release takes the lock and writes its first chunk
    urgent = InputRun(
        topics.candidates,
        0,
        [Record(len(customers), b"c0", candidate("urgent", "c0", created_at=morning))],
    )
    await app.processor.process([urgent])
    assert await release == len(customers)
    order = [d["message_id"] for d in decisions(app) if d["outcome"] != "deferred"]
    assert order.index("urgent") < len(order) - RELEASE_CHUNK, "the batch waited for the burst"
    assert len(order) == len(customers) + 1


async def test_a_record_the_core_fails_on_becomes_a_dead_letter_and_the_run_goes_on(app):
    topics = app.tact_settings.topics
    codec, build = app.processor.parts.decoder.by_topic[topics.candidates]

    def build_or_fail(fields):
        if fields["message_id"] == "m2":
            raise RuntimeError("a fault in Tact")  # anything at all, not only bad input
        return build(fields)

    app.processor.parts.decoder.by_topic[topics.candidates] = (codec, build_or_fail)
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, candidate("m1"), candidate("m2"), candidate("m3"))
    assert [d["message_id"] for d in decisions(app)] == ["m1", "m3"]
    [letter] = [SCHEMAS["tact.DeadLetter"].decode(v) for v in app.io.values(topics.dead_letters)]
    assert (letter["source_offset"], letter["source_topic"]) == (1, topics.candidates)
    assert "Tact could not apply this record (RuntimeError: a fault in Tact)" in letter["error"]
    registry = app.processor.parts.observer.metrics.registry
    labels = {"topic": topics.candidates, "kind": "failed"}
    assert registry.get_sample_value("tact_dead_letters_total", labels) == 1


def journey_event(event_id, kind, **attributes):
    return SCHEMAS["tact.CustomerEvent"].encode(
        {
            "event_id": event_id,
            "customer_id": "c1",
            "type": kind,
            "occurred_at": T0,
            "channel": None,
            "attributes": attributes,
        }
    )


def transitions(app):
    codec = SCHEMAS["tact.JourneyTransition"]
    values = app.io.values(app.tact_settings.topics.journeys)
    return [(t["transition"], t["step"]) for t in (codec.decode(v) for v in values)]


async def test_journey_transitions_are_published_once_even_when_replayed_after_a_crash():
    policy = load_policy(Path(__file__).parents[2] / "deploy" / "policies" / "journeys.toml")
    app = component_app(policy=policy)
    topics = app.tact_settings.topics
    submitted = journey_event("e1", "application_submitted", application_id="A1")
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.events, 0, submitted)
    assert transitions(app) == [("entered", None), ("step_sent", "confirm")]
    assert [(d["journey"], d["step"]) for d in decisions(app)] == [("loan_application", "confirm")]
    store = app.processor.parts.store
    store.partitions[0][state_key("c1")] = encode_state(CustomerState("c1"))  # as if lost...
    store.partitions[0][CHECKPOINT_KEY] = msgpack.packb({t: 0 for t in topics.outputs})
    restarted = component_app(io=app.io, store=store, policy=policy)
    async with restarted.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.events, 0, submitted)  # ...and the event read again
    assert transitions(app) == [("entered", None), ("step_sent", "confirm")]
    assert len(app.io.values(topics.outbound["sms"])) == 1 and len(decisions(app)) == 1
    [live] = decode_state(store.get(0, state_key("c1"))).journeys
    assert (live.journey, live.key, live.step) == ("loan_application", "A1", 1)


@pytest.mark.parametrize("broker_kind", ["kafka", "tansu"])
async def test_the_table_manager_starts_its_tables_and_recovery_without_a_wait(broker_kind):
    """Faust's TableManager sleeps a second first, for agents to declare tables; Tact's table
    is declared before the app starts, and a worker starts (and restarts) that much sooner."""
    settings = Settings(store="memory://", app_id="tact-component", broker_kind=broker_kind)
    manager = build_app(settings).tables
    calls = []

    async def noting(name, *args):
        calls.append(name)

    manager.sleep = lambda *args: noting("sleep", *args)
    manager._update_channels = lambda: noting("channels")
    manager.recovery.start = lambda: noting("recovery")
    await manager.on_start()
    assert calls == ["channels", "recovery"]


def test_the_campaign_slice_while_codes_come_is_a_setting():
    settings = Settings(
        store="memory://",
        app_id="tact-component",
        partitions=1,
        metrics_port=0,
        bulk_per_write_busy=7,
    )
    assert build_app(settings).lanes.per_write_busy == 7


async def test_an_urgent_candidate_is_decided_ahead_of_a_campaign_backlog():
    app = component_app(fetch_max_records=2)  # two candidates of the campaign per durable write
    topics = app.tact_settings.topics
    campaign = [candidate(f"m{i}", urgency="normal") for i in range(40)]
    paused, pause = [], app.consumer.pause_partitions
    app.consumer.pause_partitions = lambda tps: paused.append(set(tps)) or pause(tps)
    async with app.decide_agent.test_context() as agent:
        await put(agent, topics.profiles, 0, profile())
        await put(agent, topics.candidates, 0, *campaign, wait=False)
        await put(agent, topics.urgent, 0, candidate("code", category="service"), wait=False)
        for _ in range(200):
            if len(decisions(app)) == 41:
                break
            await asyncio.sleep(0.01)
    order = [d["message_id"] for d in decisions(app)]
    assert sorted(order) == sorted(["code", *(f"m{i}" for i in range(40))])
    assert order.index("code") <= 2, order  # with, or right after, the campaign's first write
    assert [m for m in order if m != "code"] == [f"m{i}" for i in range(40)]
    assert app.committed[(topics.candidates, 0)] == 40 and app.committed[(topics.urgent, 0)] == 1
    assert paused == [{TP(topics.candidates, 0)}]  # above 16 records held...
    assert (app.lanes.held, app.lanes.paused) == (0, False)  # ...and fetched again
    assert TP(topics.candidates, 0) not in app.consumer._paused_partitions
