"""Crash safety: kill -9 mid-stream, a frozen broker, a lost worker, hostile input.

Every assertion is made from the topics alone: decisions, outbound topics, dead letters and the
customers table's changelog.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import time
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from app.cli import main
from app.policy.policy_file import load_policy
from app.simulate import read_records, replay, state_as_json
from app.traffic import now_ms
from tests.integration import checks
from tests.integration.conftest import SCHEMAS, TopicReader, wait_until
from tests.integration.scenarios import (
    Feeder,
    assert_running,
    wait_until_deciding,
    worker_without_quiet_hours,
)
from tests.traffic import activity

pytestmark = pytest.mark.integration

CUSTOMERS = 1_000
RECORDS = 72_000


def read_outputs(harness):
    t = harness.topics
    return TopicReader(
        harness.broker.bootstrap, [t.decisions, t.dead_letters, *t.outbound.values()]
    )


def wait_for_decisions(reader, harness, message_ids, timeout):
    codec = SCHEMAS["tact.Decision"]
    decided: set[str] = set()
    read = 0

    def done():
        nonlocal read
        if not any(worker.alive for worker in harness.workers):
            raise AssertionError(f"no worker is running\n{harness.progress()}")
        reader.poll(1.0)
        records = reader.records[harness.topics.decisions]
        decided.update(codec.decode(r.value)["message_id"] for r in records[read:])
        read = len(records)
        return len(decided) >= len(message_ids)

    try:
        wait_until(done, timeout, f"decisions for {len(message_ids)} candidates", every=1.0)
    except TimeoutError as exc:
        missing = sorted(set(message_ids) - decided)
        raise TimeoutError(
            f"{exc}: {len(decided)} decided, {len(missing)} missing, e.g. {missing[:3]}\n"
            f"{harness.progress()}"
        ) from None


def assert_invariants(harness, reader, traffic, policy):
    t = harness.topics
    decisions = reader.values(t.decisions, "tact.Decision")
    candidates = {r["message_id"] for r in traffic if r["kind"] == "candidate"}
    checks.one_final_decision_each(decisions, candidates)
    messages = checks.no_message_sent_twice(reader, list(t.outbound.values()))
    checks.sent_matches_decisions(messages, decisions)
    checks.caps_hold(messages, policy)
    assert reader.records[t.dead_letters] == [], "valid traffic must not be dead-lettered"
    return decisions


def test_kill_nine_at_random_points_loses_nothing_and_sends_nothing_twice(harness, tmp_path):
    rng = random.Random(20261122)
    worker, customer_profiles, policy_path = worker_without_quiet_hours(
        harness, tmp_path, rng, CUSTOMERS
    )
    policy = load_policy(policy_path)
    start = now_ms()
    # More than the kills take (each restart ~12 s, a failpoint's two ~25 s): stopped after them.
    traffic = activity(rng, CUSTOMERS, RECORDS, start, 110_000, prefix="k")
    feeder = Feeder(harness, traffic, per_second=RECORDS // 110)
    feeder.start()

    # Kills at random moments, plus two at the exact points where a crash is most delicate:
    # outputs published but no state written, and state in Kafka but not on disk.
    plan = ["random", "after_outputs", "random", "after_changelog"]
    for kills, how in enumerate(plan, start=1):
        wait_until_deciding(worker, harness)
        assert feeder.is_alive(), f"the feed ended before kill {kills} of {len(plan)}"
        if how == "random":
            time.sleep(rng.uniform(0.2, 4))  # somewhere in the middle of deciding
            assert_running(worker)
            worker.kill()
        else:
            worker.env["TACT_FAILPOINT"] = how
            worker.stop()
            worker.start()
            wait_until(lambda: not worker.alive, 120, f"the worker to stop at {how}")
            worker.env["TACT_FAILPOINT"] = ""
        if kills % 2 == 0:  # sometimes the disk is gone too: recover from the changelog alone
            shutil.rmtree(worker.data_dir, ignore_errors=True)
        worker.start()
    wait_until_deciding(worker, harness)
    traffic = feeder.stop()
    assert feeder.error is None, feeder.error
    assert "failpoint after_outputs" in worker.log_text()
    assert "failpoint after_changelog" in worker.log_text()

    reader = read_outputs(harness)
    candidates = {r["message_id"] for r in traffic if r["kind"] == "candidate"}
    wait_for_decisions(reader, harness, candidates, timeout=300)
    harness.wait_until_all_committed()
    worker.stop()
    reader.poll(2.0)
    assert_invariants(harness, reader, traffic, policy)

    lines = io.StringIO("\n".join(json.dumps(r) for r in customer_profiles + traffic))
    expected = replay(read_records(lines), policy)
    changelog = TopicReader(
        harness.broker.bootstrap, [f"{harness.env['TACT_APP_ID']}-customers-changelog"]
    )
    changelog.poll_until_quiet()
    live = checks.table_states(next(iter(changelog.records.values())))
    simulated = {c: state_as_json(s) for c, s in expected.states.items()}
    assert live.keys() == simulated.keys()
    different = [c for c in simulated if live[c] != simulated[c]]
    first = different[0] if different else None
    assert not different, (
        f"{len(different)} customers differ from the replay, e.g. {different[:3]}; "
        f"{checks.state_difference(live[first], simulated[first]) if first else ''}"
    )


def wait_for_all_decided(harness, worker_list, traffic):
    reader = read_outputs(harness)
    candidates = {r["message_id"] for r in traffic if r["kind"] == "candidate"}
    wait_for_decisions(reader, harness, candidates, timeout=300)
    harness.wait_until_all_committed()
    for worker in worker_list:
        worker.stop()
    reader.poll(2.0)
    return reader


def test_a_frozen_broker_is_survived_without_help(harness, tmp_path):
    rng = random.Random(15)
    worker, _, policy_path = worker_without_quiet_hours(harness, tmp_path, rng, 300)
    pid = worker.process.pid
    traffic = activity(rng, 300, 8_000, now_ms(), 20_000, prefix="p")
    feeder = Feeder(harness, traffic, per_second=400)
    feeder.start()
    wait_until_deciding(worker, harness)
    time.sleep(2)
    harness.broker.pause()  # SIGSTOP: connections stay open, nothing answers
    time.sleep(15)
    harness.broker.resume()
    feeder.join()
    assert feeder.error is None, feeder.error
    reader = read_outputs(harness)
    candidates = {r["message_id"] for r in traffic if r["kind"] == "candidate"}
    wait_for_decisions(reader, harness, candidates, timeout=300)
    assert worker.alive and worker.process.pid == pid, "the same worker process carried on"
    worker.stop()
    reader.poll(2.0)
    assert_invariants(harness, reader, traffic, load_policy(policy_path))


def test_a_second_worker_takes_over_when_one_is_killed(harness, tmp_path):
    """Each worker also keeps a standby copy of the other's partitions, restored from the
    changelog as it grows (restore.py), and the survivor decides on from it."""
    rng = random.Random(2)
    env = {"TACT_VIEW_TOKEN": "t0ken", "TACT_STANDBY_REPLICAS": "1"}
    first, customer_profiles, policy_path = worker_without_quiet_hours(
        harness, tmp_path, rng, 500, **env
    )
    policy = load_policy(policy_path)
    second = harness.worker("w2", TACT_POLICY_PATH=str(policy_path), **env)
    wait_until(
        lambda: (
            second.metric("tact_assigned_partitions") == 2
            and first.metric("tact_assigned_partitions") == 2
        ),
        120,
        "the partitions to be shared",
    )
    each_customer_is_explained_by_either_worker(harness, [first, second], customer_profiles[:40])
    traffic = activity(rng, 500, 12_500, now_ms(), 25_000, prefix="g")
    feeder = Feeder(harness, traffic, per_second=500)
    feeder.start()
    wait_until_deciding(second, harness)
    time.sleep(rng.uniform(1, 4))
    assert_running(second)
    second.kill()
    wait_until(
        lambda: first.metric("tact_assigned_partitions") == 4, 120, "the survivor to take all"
    )
    assert first.metric("tact_changelog_restored_records_total", copy="standby") > 0
    feeder.join()
    assert feeder.error is None, feeder.error
    reader = wait_for_all_decided(harness, [first], traffic)
    assert_invariants(harness, reader, traffic, policy)
    lines = io.StringIO("\n".join(json.dumps(r) for r in customer_profiles + traffic))
    expected = replay(read_records(lines), policy)
    changelog = TopicReader(
        harness.broker.bootstrap, [f"{harness.env['TACT_APP_ID']}-customers-changelog"]
    )
    changelog.poll_until_quiet()
    live = checks.table_states(next(iter(changelog.records.values())))
    assert live == {c: state_as_json(s) for c, s in expected.states.items()}


def _view(worker, customer_id, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.view_port}/customers/{customer_id}", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def each_customer_is_explained_by_either_worker(harness, workers, customer_profiles):
    """Asked any worker, the owner answers (the other has no ready copy of its partitions: it
    would answer 503); without the token, 401 and no customer data."""
    answers = {}

    def all_answered() -> bool:  # a partition just assigned answers 503 until it is ready
        for worker in workers:
            for profile in customer_profiles:
                answers[worker, profile["customer_id"]] = _view(
                    worker, profile["customer_id"], "t0ken"
                )
        return all(status == 200 for status, _ in answers.values())

    wait_until(all_answered, 60, "every customer's view", every=1.0)
    for worker in workers:
        for profile in customer_profiles:
            _, view = answers[worker, profile["customer_id"]]
            assert view["profile"]["timezone"] == profile["timezone"]
            assert [c["cap"] for c in view["caps"]] == ["rolling_24h", "rolling_7d"]
        status, answer = _view(worker, customer_profiles[0]["customer_id"])
        assert status == 401 and "customer_id" not in json.dumps(answer)
    customer = customer_profiles[1]["customer_id"]
    args = [
        "explain",
        customer,
        "--json",
        "--view",
        f"http://127.0.0.1:{workers[0].view_port}",
        "--broker",
        harness.broker.url,
        "--topic-prefix",
        harness.prefix,
    ]
    told = CliRunner(env={"TACT_VIEW_TOKEN": "t0ken"}).invoke(main, args)
    assert told.exit_code == 0, told.output
    assert json.loads(told.output)["view"]["customer_id"] == customer


def hostile_records(harness, rng, count, customers):
    """(topic, key, value, kind) of records Tact must refuse, one dead letter each."""
    import fastavro

    from app.client import encode_input
    from app.codecs.avro import SCHEMAS_DIR
    from tests.integration.conftest import SCHEMAS

    t = harness.topics
    raw_candidate = json.loads((SCHEMAS_DIR / "Candidate.avsc").read_text())
    without_fields = fastavro.parse_schema(
        {
            **raw_candidate,
            "name": "Partial",
            "fields": [
                f for f in raw_candidate["fields"] if f["name"] not in ("template", "payload")
            ],
        }
    )
    wider_enum = fastavro.parse_schema(
        {
            **raw_candidate,
            "name": "Wider",
            "fields": [
                {
                    **f,
                    "type": {
                        **f["type"],
                        "name": "Category2",
                        "symbols": [*f["type"]["symbols"], "spam"],
                    },
                }
                if f["name"] == "category"
                else f
                for f in raw_candidate["fields"]
            ],
        }
    )

    def candidate(i, **changes):
        customer = f"c{rng.randrange(customers)}"
        base = {
            "kind": "candidate",
            "message_id": f"h{i}",
            "customer_id": customer,
            "category": "promo",
            "audience": "mass",
            "channels": ["email"],
            "urgency": "immediate",
            "created_at": now_ms(),
            "template": "t",
        }
        return {**base, **changes}

    def avro_with(schema, record):
        out = io.BytesIO()
        out.write(b"\x00\x00\x00\x00\x02")
        fastavro.schemaless_writer(out, schema, record)
        return out.getvalue()

    def full(record):
        return {
            **{"priority": None, "dedupe_key": None, "expires_at": None, "payload": {}},
            **{k: v for k, v in record.items() if k != "kind"},
        }

    kinds = [
        "random_bytes",
        "truncated",
        "wrong_schema_id",
        "missing_fields",
        "unknown_enum",
        "far_past",
        "far_future",
        "null_value",
        "wrong_key",
        "id_too_long",
        "empty_channels",
        "bad_timezone",
    ]
    made = []
    for i in range(count):
        kind = "huge" if i < 40 else kinds[i % len(kinds)]
        c = candidate(i)
        good = encode_input(c, t, SCHEMAS)
        key = c["customer_id"].encode()
        if kind == "random_bytes":
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 64)))
            if value[:1] == b"\x00":
                value = b"\x01" + value[1:]
        elif kind == "truncated":
            value = good.value[: rng.randrange(5, len(good.value) - 1)]
        elif kind == "wrong_schema_id":
            value = b"\x00\x00\x00\x00\x63" + good.value[5:]
        elif kind == "missing_fields":
            value = avro_with(without_fields, full(c))
        elif kind == "unknown_enum":
            value = avro_with(wider_enum, {**full(c), "category": "spam"})
        elif kind == "far_past":
            value = encode_input({**c, "created_at": 86_400_000}, t, SCHEMAS).value
        elif kind == "far_future":
            value = encode_input({**c, "created_at": now_ms() + 400 * 86_400_000}, t, SCHEMAS).value
        elif kind == "null_value":
            value = None
        elif kind == "wrong_key":
            key = b"someone-else"
            value = good.value
        elif kind == "id_too_long":
            value = encode_input({**c, "message_id": "h" * 129}, t, SCHEMAS).value
        elif kind == "empty_channels":
            value = encode_input({**c, "channels": []}, t, SCHEMAS).value
        elif kind == "bad_timezone":
            made.append(
                (
                    t.profiles,
                    key,
                    SCHEMAS["tact.CustomerProfile"].encode(
                        {
                            "customer_id": c["customer_id"],
                            "timezone": "Atlantis/Capital",
                            "consents": {},
                            "reachable": {},
                            "preferred_channel": None,
                        }
                    ),
                    kind,
                )
            )
            continue
        else:  # huge
            value = encode_input({**c, "payload": {"blob": "x" * 300_000}}, t, SCHEMAS).value
        made.append((t.candidates, key, value, kind))
    return made


def test_ten_thousand_hostile_records_become_dead_letters_and_nothing_else(harness, tmp_path):
    rng = random.Random(666)
    worker, customer_profiles, policy_path = worker_without_quiet_hours(harness, tmp_path, rng, 200)
    pid = worker.process.pid
    hostile = hostile_records(harness, rng, 10_000, 200)
    valid = activity(rng, 200, 3_000, now_ms(), 10_000, prefix="v")
    valid_encoded = [(e.topic, e.key, e.value, "valid") for e in harness.encode(valid)]
    mixed = hostile + valid_encoded
    rng.shuffle(mixed)
    mixed.sort(key=lambda r: r[3] != "valid")  # keep valid records in time order among them
    valid_positions = sorted(rng.sample(range(len(mixed)), len(valid_encoded)))
    ordered, hostile_iter, valid_iter = [], iter(hostile), iter(valid_encoded)
    for i in range(len(mixed)):
        ordered.append(
            next(valid_iter) if valid_positions and i == valid_positions[0] else next(hostile_iter)
        )
        if valid_positions and i == valid_positions[0]:
            valid_positions.pop(0)
    harness.publish_raw((topic, key, value) for topic, key, value, _ in ordered)

    t = harness.topics
    reader = read_outputs(harness)
    candidates = {r["message_id"] for r in valid if r["kind"] == "candidate"}
    wait_until(
        lambda: (
            reader.poll(1.0)
            or (
                len(reader.records[t.dead_letters]) >= len(hostile)
                and len({d["message_id"] for d in reader.values(t.decisions, "tact.Decision")})
                >= len(candidates)
            )
        ),
        300,
        "every record to be dealt with",
        every=1.0,
    )
    reader.poll(2.0)
    assert worker.alive and worker.process.pid == pid, "hostile input never stops the worker"

    letters = reader.values(t.dead_letters, "tact.DeadLetter")
    assert len(letters) == len(hostile), "one dead letter per hostile record, no more, no less"
    assert all(len(letter["error"]) > 20 for letter in letters)
    errors = " | ".join(sorted({letter["error"][:40] for letter in letters}))
    for expected in (
        "not in the Confluent wire format",
        "truncated record",
        "schema id 99",
        "empty value",
        "is not the customer_id",
        "message_id is longer than 128 bytes",
        "channels is empty",
        "more than a year before now",
        "more than a day in the future",
        "is not an IANA time zone",
        "the limit is 262,144",
    ):
        assert expected[:40] in errors or any(expected in letter["error"] for letter in letters), (
            expected
        )
    huge = [letter for letter in letters if "the limit is" in letter["error"]]
    assert len(huge) == 40 and all(len(letter["value"]) == 256 * 1024 for letter in huge)

    policy = load_policy(policy_path)
    lines = io.StringIO("\n".join(json.dumps(r) for r in customer_profiles + valid))
    expected = replay(read_records(lines), policy)
    live = sorted(
        (d["message_id"], d["outcome"], d["channel"])
        for d in reader.values(t.decisions, "tact.Decision")
    )
    assert live == sorted((d.message_id, d.outcome.value, d.channel) for d in expected.decisions)
