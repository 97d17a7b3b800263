"""``ekms serve`` tunes the garbage collector once every listener is up, and says so on
``/metrics`` (``app.infra.gc_tuning``)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.infra import gc_tuning
from tests.e2e.serving import embedded_settings, serving


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc_tuning.PAUSES.uninstall()
        gc_tuning.PAUSES.refreeze_after_next_full_collection(None)
        gc_tuning.publish()


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("ekms_gc_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def _metrics(port: int | None) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return _samples(response.text)


async def test_serve_freezes_the_collector_and_sets_gen0_once_listening(
    tmp_path: Path, restored_gc: None
) -> None:
    settings = embedded_settings(tmp_path, gc_gen0_threshold=12_345)
    async with serving(settings):
        assert gc.get_threshold()[0] == 12_345
        assert gc.get_freeze_count() > 1_000
        assert gc_tuning.PAUSES.installed and gc_tuning.PAUSES.refreeze_pending
        gc.collect(0)  # timed into the histogram, by generation
        frozen = gc.get_freeze_count()
        lazily_loaded = [object()]
        gc.collect()  # the first full collection since start-up: its survivors are frozen
        for _ in range(1000):  # on the event loop, soon (a bound for a hang, not a speed)
            if gc.get_freeze_count() > frozen:
                break
            await asyncio.sleep(0.01)
        assert id(lazily_loaded) not in {id(o) for o in gc.get_objects()}
        seen = await _metrics(settings.metrics_port)
    assert seen['ekms_gc_threshold{generation="0"}'] == 12_345
    assert seen["ekms_gc_frozen_objects"] > 1_000
    assert seen['ekms_gc_pause_seconds_count{generation="0"}'] >= 1


async def test_serve_leaves_the_collector_alone_when_told_to(
    tmp_path: Path, restored_gc: None
) -> None:
    before = gc.get_threshold()
    settings = embedded_settings(tmp_path, gc_freeze=False)
    async with serving(settings):
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0 and not gc_tuning.PAUSES.refreeze_pending
        seen = await _metrics(settings.metrics_port)
    assert seen["ekms_gc_frozen_objects"] == 0
    assert seen['ekms_gc_threshold{generation="0"}'] == before[0]
