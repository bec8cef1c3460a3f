"""Workarounds for the embedded Tansu broker, and only for it (Settings.broker_kind = "tansu").

Tansu reports a partition's end offset as the base offset of its last record batch + 1, so
after a multi-record batch the end looks earlier than it is, and Faust's table recovery stops
short of the changelog's tail. Before Faust trusts the end offsets of changelog partitions,
`FencedRecovery` appends one single-record "fence" to each: the reported end is then exact, and
recovery reads every change. Real Kafka does not need it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

from app.stream.tables import PromptTableManager

Fence = Callable[[set[TP]], Awaitable[None]]


def fenced_table_manager(fence: Fence) -> type[TableManager]:
    """A TableManager whose recovery fences changelog partitions before reading end offsets."""

    class FencedRecovery(Recovery):
        async def _build_highwaters(
            self, consumer: Any, tps: set[TP], destination: Any, title: str
        ) -> None:
            if tps:
                await fence(tps)
            await super()._build_highwaters(consumer, tps, destination, title)

    class FencedTableManager(PromptTableManager):
        @property
        def recovery(self) -> Recovery:  # Faust's own property, over its _recovery
            if self._recovery is None:
                self._recovery = FencedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
            return self._recovery

    return FencedTableManager
