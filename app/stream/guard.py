"""Poison pills: a record that stops the worker twice is set aside on the third try.

Most bad records raise an exception, which becomes a dead letter where it happens (partition.py).
Some kill the process instead (a crash in a C extension, memory exhausted by one payload): then
the worker would replay the same run, die again and never get past it. So before each record is
applied its position is written to a small memory-mapped file, one slot per partition. If the
worker dies while applying it, the slot still names it when the worker comes back (a process
that is killed leaves its mapped pages to the operating system). A record named that way by two
attempts in a row from the same input positions is dead-lettered instead of applied.

A slot: the input positions the run started from (a hash), the record being applied, and the
record suspected so far with how many attempts died on it. Marking costs one struct write.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from collections.abc import Mapping
from pathlib import Path

import msgpack

# start-hash, applying(topic+1, offset), suspect(topic+1, offset, deaths)
SLOT = struct.Struct(">8sBqBqI")
APPLYING = struct.Struct(">Bq")  # the slot's applying field, APPLYING_AT bytes into it
APPLYING_AT = 8
NOBODY = (0, -1)
DEATHS_BEFORE_SETTING_ASIDE = 2


class Attempts:
    def __init__(self, path: Path | None, partitions: int, topics: tuple[str, ...]) -> None:
        self.topics = topics
        size = SLOT.size * partitions
        if path is None:
            self.slots: mmap.mmap | bytearray = bytearray(size)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+b") as file:
                file.truncate(max(size, path.stat().st_size))
                self.slots = mmap.mmap(file.fileno(), size)

    def begin(self, partition: int, inputs: Mapping[str, int]) -> tuple[str, int] | None:
        """A run of this partition starts from `inputs`: the record to set aside, if any."""
        start, applying, suspect, deaths = self._read(partition)
        here = _hash(inputs)
        if start != here:
            suspect, deaths = NOBODY, 0  # a new position: what happened before is over
        elif applying != NOBODY:  # the last attempt died while applying this record
            deaths = deaths + 1 if applying == suspect else 1
            suspect = applying
        self._write(partition, here, NOBODY, suspect, deaths)
        if deaths >= DEATHS_BEFORE_SETTING_ASIDE:
            return self.topics[suspect[0] - 1], suspect[1]
        return None

    def applying(self, partition: int, topic: str, offset: int) -> None:
        at = partition * SLOT.size + APPLYING_AT  # only that field: this runs for every record
        APPLYING.pack_into(self.slots, at, self.topics.index(topic) + 1, offset)

    def applied(self, partition: int) -> None:
        """Every record of the run is applied: a death from here on is not a record's doing."""
        start, _, suspect, deaths = self._read(partition)
        self._write(partition, start, NOBODY, suspect, deaths)

    def _read(self, partition: int) -> tuple[bytes, tuple[int, int], tuple[int, int], int]:
        start, a_topic, a_offset, s_topic, s_offset, deaths = SLOT.unpack_from(
            self.slots, partition * SLOT.size
        )
        return start, (a_topic, a_offset), (s_topic, s_offset), deaths

    def _write(
        self,
        partition: int,
        start: bytes,
        applying: tuple[int, int],
        suspect: tuple[int, int],
        deaths: int,
    ) -> None:
        SLOT.pack_into(self.slots, partition * SLOT.size, start, *applying, *suspect, deaths)


def _hash(inputs: Mapping[str, int]) -> bytes:
    return hashlib.blake2b(msgpack.packb(sorted(inputs.items())), digest_size=8).digest()
