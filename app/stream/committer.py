"""Committing input offsets in the background, newest first, at most once per interval.

Committing is not needed for correctness (the checkpoint's input positions make a replay a
no-op), only to bound how much is read again after a crash; so it never holds up deciding, and
it is not worth a request per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)


class Committer:
    def __init__(
        self, commit: Callable[[dict[TP, int]], Awaitable[Any]], interval: float = 1.0
    ) -> None:
        self.commit = commit
        self.interval = interval
        self.pending: dict[TP, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.last = 0.0
        self.hurry = asyncio.Event()

    def offer(self, offsets: dict[TP, int]) -> None:
        self.pending.update(offsets)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._commit_pending())

    async def _commit_pending(self) -> None:
        while self.pending:
            wait = self.last + self.interval - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hurry.wait(), wait)
            offsets, self.pending = self.pending, {}
            self.last = time.monotonic()
            try:
                await self.commit(offsets)
            except Exception as exc:  # the next commit carries newer offsets anyway
                log.warning("could not commit input offsets: %r", exc)

    async def drain(self) -> None:
        """Commit what is pending now (partitions are leaving, or the worker is stopping)."""
        if self.task is not None:
            self.hurry.set()
            try:
                await self.task
            finally:
                self.hurry.clear()
