"""Avro binary decoding, planned once per schema and compiled with mypyc (setup.py).

The reading side of avro_writer.py: `plan_reader(schema)` turns a parsed schema into a tree of
readers, one per schema node, so that reading a record is one call per field instead of
fastavro's walk of the schema for every record. It reads a body written with this same schema
(no resolution between versions: AvroCodec leaves that to fastavro) into fastavro's values, value
for value (tests/unit/test_avro_reader.py checks every Tact schema against it). Timestamps stay
epoch milliseconds, as Tact holds them. Bytes that end early, or an index past the end of an
enum or a union, raise Truncated or ValueError.

Covered: every primitive, enum, fixed, array, map, record, named references and any union.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

_DOUBLE: Final = struct.Struct("<d")
_FLOAT: Final = struct.Struct("<f")


class Unreadable(ValueError):
    """A schema this reader does not cover."""


class Truncated(ValueError):
    """The body ends before its record does."""


class Cursor:
    """A body and where reading it has got to."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos


def read_long(cursor: Cursor) -> int:
    """7 bits a byte, lowest first, then zig-zag."""
    data, pos = cursor.data, cursor.pos
    if pos >= len(data):
        raise Truncated("the body ends in the middle of a record")
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        if pos >= len(data):
            raise Truncated("the body ends in the middle of a number")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    cursor.pos = pos
    return (n >> 1) ^ -(n & 1)


def _take(cursor: Cursor, size: int) -> bytes:
    start = cursor.pos
    end = start + size
    if size < 0 or end > len(cursor.data):
        raise Truncated(f"expected {size} bytes, {len(cursor.data) - start} left")
    cursor.pos = end
    return cursor.data[start:end]


class Reader:
    def read(self, cursor: Cursor) -> object:
        raise NotImplementedError


class NullReader(Reader):
    def read(self, cursor: Cursor) -> object:
        return None


class BooleanReader(Reader):
    def read(self, cursor: Cursor) -> object:
        return _take(cursor, 1)[0] != 0


class LongReader(Reader):
    def read(self, cursor: Cursor) -> object:
        return read_long(cursor)


class FloatingReader(Reader):
    def __init__(self, unpacker: struct.Struct) -> None:
        self.unpacker = unpacker

    def read(self, cursor: Cursor) -> object:
        value: float = self.unpacker.unpack(_take(cursor, self.unpacker.size))[0]
        return value


class BytesReader(Reader):
    def read(self, cursor: Cursor) -> object:
        return _take(cursor, read_long(cursor))


class StringReader(Reader):
    def read(self, cursor: Cursor) -> object:
        return _take(cursor, read_long(cursor)).decode()


class FixedReader(Reader):
    def __init__(self, size: int) -> None:
        self.size = size

    def read(self, cursor: Cursor) -> object:
        return _take(cursor, self.size)


class EnumReader(Reader):
    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols

    def read(self, cursor: Cursor) -> object:
        index = read_long(cursor)
        if index < 0 or index >= len(self.symbols):
            raise ValueError(f"enum index {index} of {len(self.symbols)} symbols")
        return self.symbols[index]


class UnionReader(Reader):
    def __init__(self, branches: list[Reader]) -> None:
        self.branches = branches

    def read(self, cursor: Cursor) -> object:
        index = read_long(cursor)
        if index < 0 or index >= len(self.branches):
            raise ValueError(f"union index {index} of {len(self.branches)} branches")
        return self.branches[index].read(cursor)


def _block_count(cursor: Cursor) -> int:
    """The items in the next block of an array or map (0: the end)."""
    count = read_long(cursor)
    if count < 0:
        read_long(cursor)  # the block's size in bytes, of no use here
        count = -count
    return count


class ArrayReader(Reader):
    def __init__(self, items: Reader) -> None:
        self.items = items

    def read(self, cursor: Cursor) -> object:
        items: list[object] = []
        count = _block_count(cursor)
        while count:
            for _ in range(count):
                items.append(self.items.read(cursor))
            count = _block_count(cursor)
        return items


class MapReader(Reader):
    def __init__(self, values: Reader) -> None:
        self.values = values

    def read(self, cursor: Cursor) -> object:
        entries: dict[str, object] = {}
        count = _block_count(cursor)
        while count:
            for _ in range(count):
                key = _take(cursor, read_long(cursor)).decode()
                entries[key] = self.values.read(cursor)
            count = _block_count(cursor)
        return entries


class RecordReader(Reader):
    def __init__(self, names: list[str], fields: list[Reader]) -> None:
        self.names = names
        self.fields = fields

    def read(self, cursor: Cursor) -> object:
        record: dict[str, object] = {}
        for i in range(len(self.names)):
            record[self.names[i]] = self.fields[i].read(cursor)
        return record


def plan_reader(schema: Any) -> Reader:
    """The reader of a schema parsed by fastavro.parse_schema (names in __named_schemas):
    `plan_reader(schema).read(Cursor(body, 0))` is the record that body holds."""
    named = dict(schema.get("__named_schemas") or {}) if isinstance(schema, dict) else {}
    return _reader(schema, named, set())


_PRIMITIVES: Final[dict[str, Reader]] = {
    "null": NullReader(),
    "boolean": BooleanReader(),
    "int": LongReader(),
    "long": LongReader(),
    "float": FloatingReader(_FLOAT),
    "double": FloatingReader(_DOUBLE),
    "bytes": BytesReader(),
    "string": StringReader(),
}


def _reader(schema: Any, named: dict[str, Any], within: set[str]) -> Reader:
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        if schema in named:
            if schema in within:
                raise Unreadable(f"{schema} refers to itself")
            return _reader(named[schema], named, within | {schema})
        raise Unreadable(f"unknown type {schema!r}")
    if isinstance(schema, list):
        return UnionReader([_reader(branch, named, within) for branch in schema])
    if not isinstance(schema, Mapping):
        raise Unreadable(f"not a schema: {schema!r}")
    kind = schema.get("type")
    if kind == "record" or kind == "error":
        inner = within | {str(schema.get("name"))}
        fields = schema["fields"]
        return RecordReader(
            [str(f["name"]) for f in fields], [_reader(f["type"], named, inner) for f in fields]
        )
    if kind == "enum":
        return EnumReader([str(symbol) for symbol in schema["symbols"]])
    if kind == "array":
        return ArrayReader(_reader(schema["items"], named, within))
    if kind == "map":
        return MapReader(_reader(schema["values"], named, within))
    if kind == "fixed":
        return FixedReader(int(schema["size"]))
    if isinstance(kind, str) and kind in _PRIMITIVES:  # e.g. a long with a logicalType
        if schema.get("logicalType") not in (None, "timestamp-millis"):
            raise Unreadable(f"logical type {schema.get('logicalType')!r}")
        return _PRIMITIVES[kind]
    return _reader(kind, named, within)
