"""The worker's own work, in this process: the pure core alone, and each stage per record."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from types import FunctionType
from typing import Any

from app.client import Encoded
from app.clock import now_ms
from app.codecs.avro import MAX_RECORD_BYTES, Schemas
from app.codecs.records import decision_to_dict, outbound_to_dict
from app.codecs.state import encode_state
from app.collector import collector_for_deciding, collector_off
from app.config import TopicNames
from app.policy.engine import apply_record
from app.policy.model import CustomerProfile, CustomerState
from app.policy.policy_file import load_policy
from app.simulate import parse_record
from app.stream.kafka_records import InputDecoder


def core_rate(records: list[dict[str, Any]], seconds: float = 3.0) -> float:
    """Decisions per second of the pure core alone: in memory, default policy, no codecs."""
    policy = load_policy()
    inputs = [parse_record(r) for r in records]
    profiles = [i for i in inputs if isinstance(i, CustomerProfile)]
    work = [i for i in inputs if not isinstance(i, CustomerProfile)]
    clock = now_ms()
    decided, spent = 0, 0.0
    with collector_for_deciding(), collector_off():  # as the worker decides a batch
        while spent < seconds:
            states = {p.customer_id: CustomerState(p.customer_id, p) for p in profiles}  # a new day
            started = time.perf_counter()
            for item in work:
                applied = apply_record(states.get(item.customer_id), item, clock, policy)
                if applied.state is not None:
                    states[item.customer_id] = applied.state
                decided += len(applied.decisions)
            spent += time.perf_counter() - started
    return decided / spent


@dataclass
class StageCosts:
    """CPU microseconds per input record of the worker's in-process stages (no Kafka, no Faust)."""

    decode_us: float  # Avro body -> the core's value
    core_us: float  # apply_record
    encode_us: float  # decisions and outbound messages -> Avro
    state_us: float  # each customer's final state encoded once: less than the worker writes

    def summary(self) -> str:
        return (
            f"decode {self.decode_us} + core {self.core_us} + encode {self.encode_us} "
            f"+ state {self.state_us} µs per record"
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def records_per_s(self) -> float:
        """The most records one core could decide if Kafka and Faust cost nothing."""
        return 1e6 / (self.decode_us + self.core_us + self.encode_us + self.state_us)


def stage_costs(encoded: list[Encoded], topics: TopicNames, schemas: Schemas) -> StageCosts:
    """Time the worker's own work on the bench's records, a stage at a time, with the worker's
    codecs and core: the floor under what one worker process can cost per record."""
    decoder = InputDecoder(topics, schemas, MAX_RECORD_BYTES)
    decision_codec, outbound_codec = schemas["tact.Decision"], schemas["tact.OutboundMessage"]
    policy, clock = load_policy(), now_ms()
    with collector_for_deciding(), collector_off():  # as the worker decides a batch
        started = time.perf_counter()
        inputs = []
        for record in encoded:
            inputs.append(decoder.decode(record.topic, record))
        decoded = time.perf_counter()
        states: dict[str, CustomerState | None] = {}
        outputs = []
        for item in inputs:
            applied = apply_record(states.get(item.customer_id), item, clock, policy)
            states[item.customer_id] = applied.state
            outputs.append(applied)
        decided = time.perf_counter()
        for applied in outputs:
            for decision in applied.decisions:
                decision_codec.encode_value(decision, decision_to_dict)
            for message in applied.outbound:
                outbound_codec.encode_value(message, outbound_to_dict)
        encoded_at = time.perf_counter()
        for state in states.values():
            if state is not None:
                encode_state(state)
        done = time.perf_counter()
    per_record = 1e6 / max(len(encoded), 1)
    return StageCosts(
        round((decoded - started) * per_record, 2),
        round((decided - decoded) * per_record, 2),
        round((encoded_at - decided) * per_record, 2),
        round((done - encoded_at) * per_record, 2),
    )


def core_is_compiled() -> bool:
    """Whether the install compiled the policy core (setup.py), or it runs interpreted."""
    return not isinstance(apply_record, FunctionType)  # compiled, it is a builtin


def build_name(compiled: bool) -> str:
    return "compiled" if compiled else "interpreted"
