"""The garbage collector of ``ekms serve``: tuned once start-up is over, and its pauses measured.

A served process holds a few hundred thousand long-lived objects (SQLAlchemy, pydantic, grpc,
botocore's service models, the key chain snapshot) and allocates short-lived ones per call. By
default CPython's collector walks the long-lived ones again in every full collection: a pause
of tens of milliseconds on the event loop that every call in flight waits out, i.e. the p99.
``apply`` (called by ``app.server`` once every listener accepts connections):

- collects once, then ``gc.freeze()``: everything alive after start-up moves to the permanent
  generation, which no later collection walks (objects are not leaked: what dies later is
  still freed by reference counting; only cycles among frozen objects are never collected,
  and start-up leaves none behind after the ``gc.collect()``);
- sets the first generation's threshold (allocations minus deallocations of tracked objects
  between young collections): a larger one means fewer, still short, young collections.

Start-up does not end with the listeners: the first calls load what is loaded lazily (codecs,
botocore's service model, the key chain snapshot, the configuration a REST client sets). So
the first full collection after start-up freezes its survivors too, once
(``GcPauses.refreeze_after_next_full_collection``): a bench run saw that first full collection
pause the loop for ~45 ms although start-up was frozen.

``GcPauses`` times every collection through ``gc.callbacks`` into
``ekms_gc_pause_seconds{generation}``; ``ekms_gc_frozen_objects`` and
``ekms_gc_threshold{generation}`` show what was applied.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.infra.metrics import GC_FROZEN, GC_PAUSES, GC_THRESHOLD


@dataclass(frozen=True, slots=True)
class GcTuning:
    """What to apply: ``freeze`` after start-up, and gen0's threshold (``None``: Python's)."""

    freeze: bool = True
    threshold0: int | None = None


@dataclass(frozen=True, slots=True)
class GcState:
    """What the collector runs with once ``apply`` returns."""

    frozen_objects: int
    thresholds: tuple[int, int, int]


def apply(tuning: GcTuning) -> GcState:
    """Apply ``tuning`` to this process's collector (idempotent) and publish the result."""
    if tuning.threshold0 is not None:
        _, threshold1, threshold2 = gc.get_threshold()
        gc.set_threshold(tuning.threshold0, threshold1, threshold2)
    if tuning.freeze:
        gc.collect()  # start-up's garbage (cycles included) is freed, not frozen forever
        gc.freeze()
    return publish()


def publish() -> GcState:
    """The collector's current state, into the gauges."""
    state = GcState(gc.get_freeze_count(), gc.get_threshold())
    GC_FROZEN.set(state.frozen_objects)
    for generation, threshold in enumerate(state.thresholds):
        GC_THRESHOLD.labels(generation=str(generation)).set(threshold)
    return state


class GcPauses:
    """Times each collection (``gc.callbacks``) into ``ekms_gc_pause_seconds``. Collections
    run on whichever thread allocated, so the start instant is kept per collection, not per
    thread: CPython runs one collection at a time (it holds the GIL throughout)."""

    def __init__(self) -> None:
        self._started = 0.0
        self._observers = [GC_PAUSES.labels(generation=str(g)) for g in range(3)]
        self._refreeze: Schedule | None = None
        self.installed = False

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        self._observers[generation].observe(time.perf_counter() - self._started)
        if generation == 2 and self._refreeze is not None:
            schedule, self._refreeze = self._refreeze, None
            try:
                schedule(_freeze_survivors)  # not inside the collector's callback
            except RuntimeError:  # its event loop is closed: the server is gone
                return

    def refreeze_after_next_full_collection(self, schedule: Schedule | None) -> None:
        """Once, after the next full collection, ``schedule`` a freeze of its survivors (e.g.
        ``loop.call_soon_threadsafe``: a collection runs on whichever thread allocated);
        ``None``: not (any more)."""
        self._refreeze = schedule

    @property
    def refreeze_pending(self) -> bool:
        return self._refreeze is not None

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self)
            self.installed = False


Schedule = Callable[[Callable[[], None]], object]


def _freeze_survivors() -> None:
    gc.freeze()
    publish()


PAUSES = GcPauses()
