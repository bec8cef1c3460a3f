"""Schema ids from a Confluent-compatible Schema Registry, instead of schemas/ids.json.

Tact registers its own schemas under each topic's subject (`<topic>-value`, Confluent's default
TopicNameStrategy) and writes with the ids the registry gives. A record whose id names another
version of the schema (an upstream producer a release ahead or behind) is read by that writer's
schema, fetched once and cached, and resolved to Tact's: only what does not resolve is a dead
letter.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from app.codecs.avro import Schemas, raw_schemas, reading_schema
from app.config import TopicNames

if TYPE_CHECKING:
    from app.config import Settings


def subjects(topics: TopicNames) -> dict[str, list[str]]:
    """The subjects each of Tact's schemas is registered under: one per topic that carries it."""
    return {
        "tact.CustomerProfile": [topics.profiles],
        "tact.CustomerEvent": [topics.events],
        "tact.Candidate": [topics.candidates, topics.urgent],
        "tact.Decision": [topics.decisions],
        "tact.OutboundMessage": list(topics.outbound.values()),
        "tact.JourneyTransition": [topics.journeys],
        "tact.Signal": [topics.signals],
        "tact.DeadLetter": [topics.dead_letters],
    }


class Registry:
    def __init__(self, client: SchemaRegistryClient) -> None:
        self.client = client
        self._writers: dict[int, Any] = {}

    def register(self, topics: TopicNames) -> dict[str, int]:
        """Tact's schemas registered (or found: registering is idempotent); their ids."""
        ids = {}
        for name, raw in raw_schemas().items():
            schema = Schema(json.dumps(raw), "AVRO")
            for topic in subjects(topics)[name]:
                try:
                    ids[name] = self.client.register_schema(f"{topic}-value", schema)
                except SchemaRegistryError as exc:
                    refused = f"the schema registry refused {name} for {topic}: {exc}"
                    raise ValueError(refused) from None
        return ids

    def writer_of(self, schema_id: int) -> Any:
        """The writer schema an id names, parsed for reading (None: no such Avro schema)."""
        if schema_id not in self._writers:
            try:
                found = self.client.get_schema(schema_id)
            except SchemaRegistryError:
                return None  # not cached: it may be registered by the time it is asked again
            text = found.schema_str if found.schema_type in (None, "AVRO") else None
            self._writers[schema_id] = reading_schema(json.loads(text)) if text else None
        return self._writers[schema_id]


def registry_client(settings: Settings) -> SchemaRegistryClient | None:
    if not settings.schema_registry_url:
        return None
    conf = {"url": settings.schema_registry_url}
    if settings.schema_registry_user_info:
        conf["basic.auth.user.info"] = settings.schema_registry_user_info
    return SchemaRegistryClient.new_client(conf)


def schemas_for(settings: Settings, client: SchemaRegistryClient | None = None) -> Schemas:
    """Tact's codecs: ids from the registry when one is configured (or given), else ids.json
    with TACT_SCHEMA_IDS on top."""
    client = client or registry_client(settings)
    if client is None:
        return Schemas.load(ids=settings.schema_ids)
    registry = Registry(client)
    return Schemas.load(ids=registry.register(settings.topics), writer_of=registry.writer_of)
