"""Avro records in the Confluent wire format: magic byte 0, 4-byte schema id, schemaless body.

Schemas are read once from `schemas/`. Timestamps are written as epoch milliseconds and read
back as integers (the reader uses a copy of each schema without logical types: same bytes,
no datetime objects on the hot path).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import fastavro

MAGIC = 0
HEADER = struct.Struct(">bI")
MAX_RECORD_BYTES = 256 * 1024  # an input record, and a dead letter, at most
SCHEMAS_DIR: Traversable = resources.files("app.schemas")  # schemas/ in the source tree


class WireError(ValueError):
    """Bytes that are not a record Tact can read, with a sentence saying why."""


@dataclass(frozen=True)
class AvroCodec:
    name: str
    schema_id: int
    writer_schema: Any
    read_schema: Any  # the writer schema without logical types: same bytes, plain ints

    def encode(self, record: Mapping[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(HEADER.pack(MAGIC, self.schema_id))
        fastavro.schemaless_writer(out, self.writer_schema, record)
        return out.getvalue()

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None:
            raise WireError(f"empty value: expected a {self.name} record")
        if len(data) < HEADER.size or data[0] != MAGIC:
            raise WireError(
                "not in the Confluent wire format (magic byte 0 + 4-byte schema id + Avro body)"
            )
        schema_id = HEADER.unpack_from(data)[1]
        if schema_id != self.schema_id:
            raise WireError(
                f"schema id {schema_id} is not {self.name} (expected id {self.schema_id})"
            )
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        try:
            record = fastavro.schemaless_reader(body, self.read_schema)
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise WireError(f"not a valid {self.name} Avro body: {_describe(exc)}") from exc
        left = len(data) - body.tell()
        if left:
            raise WireError(f"{left} bytes left over after a {self.name} record: wrong schema?")
        assert isinstance(record, dict)
        return record


def check_size(data: bytes | None, limit: int = MAX_RECORD_BYTES) -> None:
    """Refuse an input record too big to be a sensible message before decoding it."""
    if data is not None and len(data) > limit:
        raise WireError(
            f"record is {len(data):,} bytes; the limit is {limit:,} "
            "(keep payloads small: send references, not documents)"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError | StopIteration):
        return "the bytes end in the middle of a field (truncated record)"
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


class Schemas:
    """Tact's record schemas, each with its wire-format id."""

    def __init__(self, codecs: Mapping[str, AvroCodec]) -> None:
        self._codecs = dict(codecs)

    def __getitem__(self, name: str) -> AvroCodec:
        return self._codecs[name]

    @classmethod
    def load(
        cls, directory: Traversable | None = None, ids: Mapping[str, int] | None = None
    ) -> Schemas:
        directory = directory or SCHEMAS_DIR
        chosen = {**_read_ids(directory), **(ids or {})}
        codecs = {}
        for path in sorted(directory.iterdir(), key=lambda p: p.name):
            if not path.name.endswith(".avsc"):
                continue
            raw = json.loads(path.read_text())
            name = f"{raw['namespace']}.{raw['name']}"
            codecs[name] = AvroCodec(
                name=name,
                schema_id=chosen[name],
                writer_schema=fastavro.parse_schema(raw),
                read_schema=fastavro.parse_schema(_without_logical_types(raw)),
            )
        return cls(codecs)


def _read_ids(directory: Traversable) -> dict[str, int]:
    ids = json.loads(directory.joinpath("ids.json").read_text())
    return {name: int(value) for name, value in ids.items() if not name.startswith("_")}


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema
