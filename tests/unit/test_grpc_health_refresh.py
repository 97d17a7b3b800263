"""The gRPC health service refreshes readiness in the background only while a Watch is open;
a Check and a new Watch always see a readiness check that started after they arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from grpc_health.v1 import health_pb2

from app.application.health import Readiness
from app.grpc.health import ReadinessHealth

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class CountingReadiness:
    """A readiness check that counts its runs; ``ready`` says what it answers."""

    def __init__(self) -> None:
        self.ready = True
        self.runs = 0

    async def __call__(self) -> Readiness:
        self.runs += 1
        return Readiness(self.ready, None if self.ready else "DATABASE_UNAVAILABLE", {})


class WatchContext:
    """What a Watch writes to its caller."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[int] = asyncio.Queue()

    async def write(self, message: Any) -> None:
        await self.sent.put(message.status)


@pytest.fixture
async def started() -> AsyncIterator[tuple[ReadinessHealth, CountingReadiness]]:
    check = CountingReadiness()
    health = ReadinessHealth(check, interval=0.001)
    await health.refresh()
    health.start()
    try:
        yield health, check
    finally:
        await health.shutdown()


async def _wait_for(predicate: Any) -> None:
    for _ in range(5000):  # a bound for a hang, not a speed
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never happened")


async def test_nothing_refreshes_in_the_background_without_a_watch(
    started: tuple[ReadinessHealth, CountingReadiness],
) -> None:
    health, check = started
    runs = check.runs
    await asyncio.sleep(0.05)  # fifty intervals
    assert check.runs == runs and health.watchers == 0


async def test_a_check_runs_a_fresh_readiness_check(
    started: tuple[ReadinessHealth, CountingReadiness],
) -> None:
    health, check = started
    check.ready = False
    response = await health.servicer.Check(health_pb2.HealthCheckRequest(), None)
    assert response.status == NOT_SERVING


async def test_a_watch_hears_changes_from_the_background_refresh(
    started: tuple[ReadinessHealth, CountingReadiness],
) -> None:
    health, check = started
    context = WatchContext()
    request = health_pb2.HealthCheckRequest(service="ekms.v1.Crypto")
    watch = asyncio.create_task(health.servicer.Watch(request, context))
    try:
        assert await context.sent.get() == SERVING
        assert health.watchers == 1
        check.ready = False  # no Check: only the periodic refresh can tell the watcher
        assert await asyncio.wait_for(context.sent.get(), 30) == NOT_SERVING
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    assert health.watchers == 0
    runs = check.runs
    await asyncio.sleep(0.05)
    assert check.runs == runs  # the watch is gone: background refreshes stopped


async def test_a_new_watch_starts_from_a_fresh_check(
    started: tuple[ReadinessHealth, CountingReadiness],
) -> None:
    health, check = started
    check.ready = False  # after the last refresh: only a fresh one can say so
    context = WatchContext()
    watch = asyncio.create_task(health.servicer.Watch(health_pb2.HealthCheckRequest(), context))
    try:
        assert await context.sent.get() == NOT_SERVING
    finally:
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    await _wait_for(lambda: health.watchers == 0)
