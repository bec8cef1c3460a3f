"""The worker's table manager: Faust's, started without its first second's wait."""

from __future__ import annotations

from faust.tables import TableManager

from app.stream import faust_private


class PromptTableManager(TableManager):
    """Faust's TableManager sleeps a second before it starts, for agents to declare their tables
    meanwhile; the consumer does not subscribe until it has. Tact declares its one table before
    the app starts, so the second is only a slower start and a slower return to work after
    every rebalance's restart of a worker."""

    async def on_start(self) -> None:
        await faust_private.start_table_manager(self)
