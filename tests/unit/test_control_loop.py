"""``ControlLoop``: its heartbeat (the stall meter) runs only while a call is in flight, so an
idle control thread never takes the GIL from the data plane."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from app.infra.control_loop import ControlLoop


@pytest.fixture
async def control() -> AsyncIterator[ControlLoop]:
    loop = ControlLoop(heartbeat=0.005)
    try:
        yield loop
    finally:
        await loop.aclose()


def _hold_the_gil() -> None:
    """A stretch of C that never lets another thread run (as a large batch's loop would)."""
    sum(range(30_000_000))


async def _beats_while(control: ControlLoop, until: threading.Event) -> None:
    """A call that stays in flight (on the control loop) until ``until`` is set."""

    async def wait() -> None:
        while not until.is_set():
            await asyncio.sleep(0.001)

    await control.run(wait)


async def test_an_idle_control_loop_does_not_beat(control: ControlLoop) -> None:
    assert await control.run(lambda: asyncio.sleep(0, "answer")) == "answer"
    beats = control.beats
    await asyncio.sleep(0.1)  # twenty heartbeats' worth, nothing in flight
    assert control.beats == beats


async def test_it_beats_while_a_call_is_in_flight_and_stops_after(control: ControlLoop) -> None:
    done = threading.Event()
    call = asyncio.create_task(_beats_while(control, done))
    for _ in range(2000):  # until a beat is seen (a bound for a hang, not a speed)
        if control.beats >= 2:
            break
        await asyncio.sleep(0.005)
    assert control.beats >= 2
    done.set()
    await call
    beats = control.beats
    await asyncio.sleep(0.05)
    assert control.beats == beats


async def test_a_stall_counts_only_while_a_call_waits(control: ControlLoop) -> None:
    await control.run(lambda: asyncio.sleep(0))  # the thread is started, nothing in flight
    mark = control.mark()
    _hold_the_gil()
    assert control.stalled_since(mark) == 0.0  # nobody waited for the KMS meanwhile

    done = threading.Event()
    call = asyncio.create_task(_beats_while(control, done))
    while control.beats < 1:  # the call is in flight and its heartbeat running
        await asyncio.sleep(0.001)
    mark = control.mark()
    _hold_the_gil()
    stalled = control.stalled_since(mark)
    done.set()
    await call
    assert stalled > 0.0
    assert control.stalled_since(mark) >= stalled  # kept once the call is over
