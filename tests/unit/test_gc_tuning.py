"""The collector tuning ``ekms serve`` applies once started (``app.infra.gc_tuning``)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator

import pytest
from pydantic import ValidationError

from app.infra import gc_tuning
from app.infra.metrics import REGISTRY
from app.infra.settings import Settings


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Whatever a test applies is undone: the test process keeps Python's collector."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc_tuning.publish()


@pytest.fixture
def only_this_collector() -> Iterator[None]:
    """No automatic collection and no other ``GcPauses`` on ``gc.callbacks`` while a test
    counts collections: a server an earlier test ran in this process may have installed the
    process-wide one, and other threads' allocations would trigger collections of their own."""
    others = [cb for cb in gc.callbacks if isinstance(cb, gc_tuning.GcPauses)]
    for cb in others:
        gc.callbacks.remove(cb)
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.callbacks.extend(others)


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_apply_freezes_what_is_alive_and_sets_gen0_threshold(restored_gc: None) -> None:
    _, threshold1, threshold2 = gc.get_threshold()
    state = gc_tuning.apply(gc_tuning.GcTuning(freeze=True, threshold0=5_000))
    assert gc.get_threshold() == (5_000, threshold1, threshold2) == state.thresholds
    assert state.frozen_objects > 1_000 and gc.get_freeze_count() > 1_000  # pytest, app, ...
    assert _gauge("ekms_gc_frozen_objects") == state.frozen_objects
    assert _gauge("ekms_gc_threshold", generation="0") == 5_000
    assert _gauge("ekms_gc_threshold", generation="2") == threshold2


def test_apply_without_tuning_leaves_the_collector_as_python_set_it(restored_gc: None) -> None:
    before = gc.get_threshold()
    state = gc_tuning.apply(gc_tuning.GcTuning(freeze=False, threshold0=None))
    assert state == gc_tuning.GcState(0, before)
    assert gc.get_freeze_count() == 0
    assert _gauge("ekms_gc_frozen_objects") == 0


def test_objects_frozen_at_start_up_are_left_out_of_later_collections(restored_gc: None) -> None:
    """What start-up left alive is not walked again: a later full collection sees only what
    was made after the freeze (gc.get_objects lists the collector's generations)."""
    survivor = [object()]  # a tracked container, alive before the freeze
    gc_tuning.apply(gc_tuning.GcTuning(freeze=True))
    later = [object()]
    tracked = {id(o) for o in gc.get_objects()}
    assert id(survivor) not in tracked and id(later) in tracked


def test_pauses_are_timed_by_generation(only_this_collector: None) -> None:
    pauses = gc_tuning.GcPauses()
    count = "ekms_gc_pause_seconds_count"
    before = [_gauge(count, generation=str(g)) or 0.0 for g in range(3)]
    pauses.install()
    pauses.install()  # idempotent: one callback
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        pauses.uninstall()
    after = [_gauge(count, generation=str(g)) or 0.0 for g in range(3)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1.0, 0.0, 1.0]
    assert pauses not in gc.callbacks
    gc.collect(0)  # uninstalled: no longer counted
    assert _gauge(count, generation="0") == after[0]


def test_settings_default_to_a_frozen_collector_with_pythons_threshold() -> None:
    settings = Settings()
    assert settings.gc_freeze is True and settings.gc_gen0_threshold is None


def test_settings_gen0_threshold_blank_is_pythons_and_tiny_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EKMS_GC_GEN0_THRESHOLD", "")
    assert Settings().gc_gen0_threshold is None
    monkeypatch.setenv("EKMS_GC_GEN0_THRESHOLD", "20000")
    monkeypatch.setenv("EKMS_GC_FREEZE", "false")
    assert (Settings().gc_gen0_threshold, Settings().gc_freeze) == (20_000, False)
    monkeypatch.setenv("EKMS_GC_GEN0_THRESHOLD", "10")
    with pytest.raises(ValidationError):
        Settings()


def test_the_first_full_collection_after_start_up_freezes_its_survivors_once(
    restored_gc: None, only_this_collector: None
) -> None:
    pauses = gc_tuning.GcPauses()
    scheduled: list[Callable[[], None]] = []
    pauses.refreeze_after_next_full_collection(scheduled.append)
    pauses.install()
    try:
        gc.collect(0)
        assert scheduled == []  # a young collection is not the end of warm-up
        gc.collect(2)
        gc.collect(2)
    finally:
        pauses.uninstall()
    assert len(scheduled) == 1  # once
    lazily_loaded = [object()]
    assert gc.get_freeze_count() == 0
    scheduled[0]()  # as the event loop runs it, outside the collector's callback
    assert gc.get_freeze_count() > 1_000
    assert id(lazily_loaded) not in {id(o) for o in gc.get_objects()}
    published = _gauge("ekms_gc_frozen_objects")  # at the freeze: frozen objects may die since
    assert published is not None and abs(published - gc.get_freeze_count()) < 1_000


def test_a_refreeze_whose_loop_is_gone_is_dropped(
    restored_gc: None, only_this_collector: None
) -> None:
    """A server that stopped before its first full collection leaves nothing to run."""
    loop = asyncio.new_event_loop()
    loop.close()
    pauses = gc_tuning.GcPauses()
    pauses.refreeze_after_next_full_collection(loop.call_soon_threadsafe)
    pauses.install()
    try:
        gc.collect()  # no "Event loop is closed" from inside the collector
    finally:
        pauses.uninstall()
    assert not pauses.refreeze_pending and gc.get_freeze_count() == 0
