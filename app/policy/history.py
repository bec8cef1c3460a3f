"""A customer's history, kept so that one more decision costs O(log n) in it, not O(n).

Both collections are persistent: immutable, and a changed copy shares almost everything with the
original (immutables.Map, a hash array mapped trie, copies O(log n) of itself to set one key).
- `Expiring`: key -> (time, value), forgotten after a horizon without looking at every key: each
  key is also filed under its UTC day, and whole days are dropped at once.
- `SendLog`: the times of the sends, sorted, per channel and category, so a cap counts the sends
  of a window by bisecting instead of walking them all.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from heapq import merge
from typing import Any, Generic, TypeVar

from immutables import Map

from app.policy.units import DAY

V = TypeVar("V")
EMPTY: Map[Any, Any] = Map()  # one empty map for every default: a Map never changes


class Expiring(Generic[V]):
    """key -> (time, value); `forget_before` drops a key a day after its time has passed at most.

    A plain class rather than a value dataclass so that the compiler makes it native: its
    methods are on every decision's path."""

    __slots__ = ("added", "days", "entries", "first_day", "grown_from")

    def __init__(
        self,
        entries: Map[str, tuple[int, V]] = EMPTY,
        days: Map[int, Map[str, None]] = EMPTY,
        first_day: int | None = None,
        grown_from: Map[str, tuple[int, V]] | None = None,
        added: str = "",
    ) -> None:
        self.entries = entries
        # An index, not content (equal entries are equal, however they were filed):
        self.days = days  # UTC day -> its keys
        self.first_day = first_day  # the oldest day filed
        # Provenance, not content either: these entries are `grown_from`'s plus the new key
        # `added` (None: made any other way). A writer of the entries can then append one.
        self.grown_from = grown_from
        self.added = added

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expiring) and self.entries == other.entries

    def __hash__(self) -> int:
        return hash(self.entries)

    def __repr__(self) -> str:
        return f"Expiring({dict(self.entries)!r})"

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def get(self, key: str) -> tuple[int, V] | None:
        return self.entries.get(key)

    def items(self) -> Iterator[tuple[str, tuple[int, V]]]:
        return iter(self.entries.items())

    def put(self, key: str, at: int, item: V) -> Expiring[V]:
        day = at // DAY
        keys = self.days.get(day)
        filed = (EMPTY if keys is None else keys).set(key, None)
        first = day if self.first_day is None or day < self.first_day else self.first_day
        grown_from = None if key in self.entries else self.entries
        entries = self.entries.set(key, (at, item))
        return Expiring(entries, self.days.set(day, filed), first, grown_from, key)

    def remove(self, key: str) -> Expiring[V]:
        """The day's filing stays behind; `forget_before` skips keys that no longer belong there."""
        if key not in self.entries:
            return self
        return Expiring(self.entries.delete(key), self.days, self.first_day)

    def forget_before(self, horizon: int) -> Expiring[V]:
        """Drop the keys of every whole UTC day that ended before `horizon`."""
        if self.first_day is None or (self.first_day + 1) * DAY > horizon:
            return self
        entries, days = self.entries.mutate(), self.days.mutate()
        for day in [d for d in self.days if (d + 1) * DAY <= horizon]:
            for key in days.pop(day):
                entry = entries.get(key)
                if entry is not None and entry[0] // DAY == day:
                    del entries[key]
        kept = days.finish()
        return Expiring(entries.finish(), kept, min(kept, default=None))

    @staticmethod
    def of(items: Iterable[tuple[str, int, V]]) -> Expiring[V]:
        entries: dict[str, tuple[int, V]] = {}
        days: dict[int, dict[str, None]] = {}
        for key, at, item in items:
            entries[key] = (at, item)
            days.setdefault(at // DAY, {})[key] = None
        day_maps = Map({day: Map(keys) for day, keys in days.items()})
        return Expiring(Map(entries), day_maps, min(days, default=None))


def send_class(channel: str, category: str) -> str:
    """The key a send is filed under: caps count sends by channel and category."""
    return f"{channel}/{category}"


class SendLog:
    """When each send went out, sorted, per send class (`send_class`). A plain class, native
    when compiled, as Expiring."""

    __slots__ = ("count", "oldest", "times")

    def __init__(
        self, times: Map[str, tuple[int, ...]] = EMPTY, count: int = 0, oldest: int | None = None
    ) -> None:
        self.times = times
        self.count = count
        self.oldest = oldest  # the earliest send kept: a cheap "is anything stale?"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SendLog) and self.times == other.times

    def __hash__(self) -> int:
        return hash(self.times)

    def __repr__(self) -> str:
        return f"SendLog({dict(self.times)!r})"

    def __len__(self) -> int:
        return self.count

    def add(self, channel: str, category: str, at: int) -> SendLog:
        key = send_class(channel, category)
        times = self.times.get(key, ())
        oldest = at if self.oldest is None or at < self.oldest else self.oldest
        if not times or times[-1] <= at:
            return SendLog(self.times.set(key, (*times, at)), self.count + 1, oldest)
        later = list(times)  # out of time order: rare, and only this class is copied
        insort(later, at)
        return SendLog(self.times.set(key, tuple(later)), self.count + 1, oldest)

    def remove(self, channel: str, category: str, at: int) -> SendLog:
        """One send fewer at `at` (one that never reached the customer)."""
        key = send_class(channel, category)
        times = self.times.get(key, ())
        index = bisect_left(times, at)
        if index == len(times) or times[index] != at:
            return self
        left = times[:index] + times[index + 1 :]
        kept = self.times.set(key, left) if left else self.times.delete(key)
        return SendLog.decoded(dict(kept.items()))

    def count_between(self, classes: frozenset[str], start: int, end: int) -> int:
        """Sends of these classes at `start` <= t < `end`, looking only at the classes this
        customer has sends in (most often one or two)."""
        total = 0
        for key, times in self.times.items():
            if key in classes:
                total += bisect_left(times, end) - bisect_left(times, start)
        return total

    def times_between(self, classes: frozenset[str], start: int, end: int) -> list[int]:
        """The send times of these classes at `start` <= t < `end`, in order."""
        slices = [
            times[bisect_left(times, start) : bisect_left(times, end)]
            for key, times in self.times.items()
            if key in classes
        ]
        return list(merge(*slices))

    def forget_before(self, horizon: int) -> SendLog:
        """Drop sends before `horizon`, a day's worth at a time: a send past it costs only
        memory, and dropping each one as it passes would copy its class every decision."""
        if self.oldest is None or self.oldest >= horizon - DAY:
            return self
        kept = {k: t[bisect_left(t, horizon) :] for k, t in self.times.items()}
        return SendLog.decoded({k: t for k, t in kept.items() if t})

    def sends(self) -> list[tuple[int, str, str]]:
        """(at, channel, category) of every send, in time order (ties by class)."""
        out = [(at, *key.split("/", 1)) for key, times in self.times.items() for at in times]
        return sorted(out)  # type: ignore[arg-type]

    @staticmethod
    def decoded(times: dict[str, tuple[int, ...]]) -> SendLog:
        """From sorted times per class, as stored."""
        oldest = min((t[0] for t in times.values() if t), default=None)
        return SendLog(Map(times), sum(len(t) for t in times.values()), oldest)

    @staticmethod
    def of(sends: Iterable[tuple[int, str, str]]) -> SendLog:
        grouped: dict[str, list[int]] = {}
        for at, channel, category in sends:
            grouped.setdefault(send_class(channel, category), []).append(at)
        return SendLog.decoded({k: tuple(sorted(t)) for k, t in grouped.items()})
