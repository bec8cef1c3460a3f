"""Avro records in the Confluent wire format: magic byte 0, 4-byte schema id, schemaless body.

Schemas are read once from `schemas/`. Timestamps are written as epoch milliseconds and read
back as integers (the reader uses a copy of each schema without logical types: same bytes,
no datetime objects on the hot path).
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import fastavro

from app.codecs.avro_reader import Cursor, Reader, Truncated, Unreadable, plan_reader
from app.codecs.avro_writer import Node, Unplannable, plan

MAGIC = 0
HEADER = struct.Struct(">bI")
MAX_RECORD_BYTES = 256 * 1024  # an input record, and a dead letter, at most
SCHEMAS_DIR: Traversable = resources.files("app.schemas")  # schemas/ in the source tree


class WireError(ValueError):
    """Bytes that are not a record Tact can read, with a sentence saying why."""


WriterLookup = Callable[[int], Any]  # a schema id -> that writer's parsed schema (or None)


@dataclass(frozen=True)
class AvroCodec:
    name: str
    schema_id: int
    writer_schema: Any
    read_schema: Any  # the writer schema without logical types: same bytes, plain ints
    # With a Schema Registry: a record written with another (compatible) version of the
    # schema is read by the writer's schema and resolved to this one.
    writer_of: WriterLookup | None = None
    # The schema planned for writing (avro_writer.py); None: fastavro writes it.
    planned: Node | None = field(default=None, compare=False)
    # ... and for reading a body of this schema (avro_reader.py); None: fastavro reads it.
    reader: Reader | None = field(default=None, compare=False)

    def encode(self, record: Mapping[str, Any]) -> bytes:
        if self.planned is not None:
            body = bytearray(HEADER.pack(MAGIC, self.schema_id))
            self.planned.write(body, record)
            return bytes(body)
        out = io.BytesIO()
        out.write(HEADER.pack(MAGIC, self.schema_id))
        fastavro.schemaless_writer(out, self.writer_schema, record)
        return out.getvalue()

    def encode_value(self, value: object, as_dict: Callable[[Any], Mapping[str, Any]]) -> bytes:
        """A value whose attributes are the schema's fields, written as it is by the planned
        writer; through its dict (`as_dict`) where fastavro writes."""
        if self.planned is None:
            return self.encode(as_dict(value))
        body = bytearray(HEADER.pack(MAGIC, self.schema_id))
        self.planned.write(body, value)
        return bytes(body)

    def decode(self, data: bytes | None) -> dict[str, Any]:
        if data is None:
            raise WireError(f"empty value: expected a {self.name} record")
        if len(data) < HEADER.size or data[0] != MAGIC:
            raise WireError(
                "not in the Confluent wire format (magic byte 0 + 4-byte schema id + Avro body)"
            )
        schema_id = HEADER.unpack_from(data)[1]
        writer = self.read_schema if schema_id == self.schema_id else self._other(schema_id)
        try:
            record, end = self._read(data, writer)
        except fastavro.read.SchemaResolutionError as exc:
            raise WireError(
                f"schema id {schema_id} does not resolve to {self.name}: {_describe(exc)}"
            ) from exc
        except Exception as exc:  # fastavro raises many types on bad bytes
            raise WireError(f"not a valid {self.name} Avro body: {_describe(exc)}") from exc
        left = len(data) - end
        if left:
            raise WireError(f"{left} bytes left over after a {self.name} record: wrong schema?")
        assert isinstance(record, dict)
        return record

    def _read(self, data: bytes, writer: Any) -> tuple[Any, int]:
        """The record of the body after the header, and where it ends."""
        if writer is self.read_schema and self.reader is not None:
            cursor = Cursor(data, HEADER.size)
            return self.reader.read(cursor), cursor.pos
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        if writer is self.read_schema:
            return fastavro.schemaless_reader(body, self.read_schema), body.tell()
        return fastavro.schemaless_reader(body, writer, self.read_schema), body.tell()

    def _other(self, schema_id: int) -> Any:
        writer = self.writer_of(schema_id) if self.writer_of is not None else None
        if writer is None:
            raise WireError(
                f"schema id {schema_id} is not {self.name} (expected id {self.schema_id})"
            )
        return writer


def _planned(parsed: Any) -> Node | None:
    try:
        return plan(parsed)
    except Unplannable:
        return None


def _planned_reader(parsed: Any) -> Reader | None:
    try:
        return plan_reader(parsed)
    except Unreadable:
        return None


def check_size(data: bytes | None, limit: int = MAX_RECORD_BYTES) -> None:
    """Refuse an input record too big to be a sensible message before decoding it."""
    if data is not None and len(data) > limit:
        raise WireError(
            f"record is {len(data):,} bytes; the limit is {limit:,} "
            "(keep payloads small: send references, not documents)"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EOFError | StopIteration | Truncated):
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
        cls,
        directory: Traversable | None = None,
        ids: Mapping[str, int] | None = None,
        writer_of: WriterLookup | None = None,
    ) -> Schemas:
        directory = directory or SCHEMAS_DIR
        chosen = {**_read_ids(directory), **(ids or {})}
        codecs = {}
        for name, raw in raw_schemas(directory).items():
            parsed, read_schema = fastavro.parse_schema(raw), reading_schema(raw)
            codecs[name] = AvroCodec(
                name=name,
                schema_id=chosen[name],
                writer_schema=parsed,
                read_schema=read_schema,
                writer_of=writer_of,
                planned=_planned(parsed),
                reader=_planned_reader(read_schema),
            )
        return cls(codecs)


def raw_schemas(directory: Traversable | None = None) -> dict[str, Any]:
    """Tact's schemas as JSON values, by full name (tact.Candidate...)."""
    out = {}
    for path in sorted((directory or SCHEMAS_DIR).iterdir(), key=lambda p: p.name):
        if path.name.endswith(".avsc"):
            raw = json.loads(path.read_text())
            out[f"{raw['namespace']}.{raw['name']}"] = raw
    return out


def reading_schema(raw: Any) -> Any:
    """A schema parsed for reading: without logical types (the same bytes, plain ints)."""
    return fastavro.parse_schema(_without_logical_types(raw))


def _read_ids(directory: Traversable) -> dict[str, int]:
    ids = json.loads(directory.joinpath("ids.json").read_text())
    return {name: int(value) for name, value in ids.items() if not name.startswith("_")}


def _without_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(item) for item in schema]
    return schema
