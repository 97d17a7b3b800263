"""Single-flight: one run of a job at a time, shared by every caller that asks while it runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """A call while a run is under way joins it and gets its result, or its error; a call after
    it ends starts a new run. The run is shielded: a caller that gives up (a closed request)
    does not cancel it for the others."""

    def __init__(self) -> None:
        self._running: asyncio.Task[T] | None = None
        self.joined = 0  # calls that joined a run already under way, since start

    async def run(self, start: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """The result of the run under way, or of a new one made by ``start``."""
        task = self._running
        if task is None or task.done():
            task = asyncio.create_task(start())
            task.add_done_callback(_retrieve)
            self._running = task
        else:
            self.joined += 1
        return await asyncio.shield(task)

    async def aclose(self, grace_seconds: float = 10.0) -> None:
        """Let a run under way finish (cancel it past the grace period), for shutdown."""
        task = self._running
        if task is None or task.done():
            return
        _, pending = await asyncio.wait({task}, timeout=grace_seconds)
        for late in pending:
            late.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Every caller may have gone: mark the error seen so asyncio does not log it as lost.
    if not task.cancelled():
        task.exception()
