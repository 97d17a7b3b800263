"""A thread with an event loop of its own for control-plane I/O (the external KMS).

Why: the data plane runs on the main event loop. A saturated main loop (many concurrent
batches) delays every callback queued behind it, so a KMS answer that arrived at once could be
read late, and a sync could record a healthy external key as Unavailable. KMS calls therefore
run here, where nothing else competes for the loop; the main loop only waits for the result.

The thread still shares the GIL with the data plane. ``StallMeter`` measures how long this
loop could not run while a call was in flight (its heartbeat is late by that much), so a sync
can tell "the KMS did not answer" apart from "ekms was too busy to hear it". The heartbeat
runs only while a call is in flight: an idle control thread never wakes up, so it takes the
GIL from the data plane 50 times a second only while the KMS is being asked (a stall when
nothing waits for the KMS delays no answer, so nothing is lost by not measuring it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.application.ports import StallMark

T = TypeVar("T")

HEARTBEAT_SECONDS = 0.02


class ControlLoop:
    """Runs coroutines on a dedicated daemon thread's event loop, started on first use.

    ``run(factory)`` is awaited from any other loop; cancelling the caller cancels the call.
    ``aclose()`` stops the thread; a later ``run`` starts a new one.
    """

    def __init__(self, name: str = "ekms-control", heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self._name = name
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        # Written by the control thread only; read anywhere (a float assignment is atomic).
        self._stalled_total = 0.0
        self._beat_due = time.monotonic()
        self._beating = False
        self._in_flight = 0  # calls on the control loop (its thread only)
        self._beat: asyncio.Task[None] | None = None
        self.beats = 0
        """Heartbeats so far: they happen only while a call is in flight."""

    def __repr__(self) -> str:
        return f"ControlLoop(name={self._name!r}, running={self._loop is not None})"

    async def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        loop = self._ensure_started()

        async def call() -> T:
            self._call_started()
            try:
                return await factory()
            finally:
                self._call_ended()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(call(), loop)
        return await asyncio.wrap_future(future)

    # --- StallMeter ---------------------------------------------------------------------------

    def mark(self) -> StallMark:
        return StallMark(self._stalled_now(), time.monotonic())

    def stalled_since(self, mark: StallMark) -> float:
        """Seconds, since ``mark``, during which this loop wanted to run and could not."""
        return max(0.0, self._stalled_now() - mark.stalled)

    def _stalled_now(self) -> float:
        if not self._beating:
            return self._stalled_total
        late = time.monotonic() - self._beat_due - self._heartbeat
        return self._stalled_total + max(0.0, late)

    # --- the heartbeat, while calls are in flight (on the control thread) ----------------------

    def _call_started(self) -> None:
        self._in_flight += 1
        if self._beat is None:
            self._beat_due = time.monotonic()
            self._beating = True
            self._beat = asyncio.get_running_loop().create_task(self._beats())

    def _call_ended(self) -> None:
        self._in_flight -= 1
        if self._in_flight or self._beat is None:
            return
        self._beat.cancel()
        self._beat = None
        late = time.monotonic() - self._beat_due - self._heartbeat
        if late > 0:  # the last beat was late already: that much of the call was a stall
            self._stalled_total += late
        self._beating = False

    # --- lifecycle ----------------------------------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None:
                return self._loop
            ready = threading.Event()
            box: list[asyncio.AbstractEventLoop] = []
            thread = threading.Thread(
                target=self._main, args=(box, ready), name=self._name, daemon=True
            )
            thread.start()
            ready.wait()
            self._loop, self._thread = box[0], thread
            return self._loop

    def _main(self, box: list[asyncio.AbstractEventLoop], ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        box.append(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _beats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            self.beats += 1
            late = time.monotonic() - self._beat_due - self._heartbeat
            if late > 0:
                self._stalled_total += late
            self._beat_due = time.monotonic()

    async def aclose(self, before: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run ``before`` on the control loop (closing clients bound to it), then stop it."""
        with self._lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            if before is not None:
                await before()
            return
        if before is not None:
            await self.run(before)
        with self._lock:
            self._loop = self._thread = None
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
