"""``grpc.health.v1.Health`` driven by readiness (the same check as ``/readyz``).

SERVING only while readiness says ready (database reachable, schema at head or compatibly
ahead, key chain usable or not yet configured), NOT_SERVING otherwise. The status of the
server ("") and of ``ekms.v1.Crypto`` is refreshed before answering each Check and when a
Watch opens, so neither answers from before it arrived, and every ``interval`` seconds while
a Watch is open, so watchers hear changes. With no Watch open nothing refreshes in the
background: a readiness check is three statements and 2-4 ms of the event loop's CPU, which
calls arriving meanwhile wait out (it showed in the p99 at half load, docs/performance.md).
Refreshes are single-flight: a Check joins the next refresh to start, so a flood of Checks
costs at most one readiness check at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from app.application.health import Readiness

log = structlog.get_logger(__name__)

CRYPTO_SERVICE = "ekms.v1.Crypto"
SERVICES = ("", CRYPTO_SERVICE)

ReadinessCheck = Callable[[], Awaitable[Readiness]]


class ReadinessHealth:
    def __init__(self, readiness: ReadinessCheck, interval: float = 1.0) -> None:
        self._readiness = readiness
        self._interval = interval
        self.servicer = _Servicer(self)
        self._running: asyncio.Task[None] | None = None
        self._queued: asyncio.Task[None] | None = None
        self._loop: asyncio.Task[None] | None = None
        self._ready: bool | None = None
        self.watchers = 0
        """Watch streams open: the periodic refresh runs only while there is one."""

    async def refresh(self) -> None:
        """Return once a readiness check that started after this call has been applied."""
        if self._queued is None:
            self._queued = asyncio.create_task(self._refresh_after(self._running))
        await asyncio.shield(self._queued)

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="grpc-health")

    async def shutdown(self) -> None:
        """NOT_SERVING for good (graceful shutdown), and stop refreshing.

        A refresh in flight is let finish (a Check may be waiting on it); its answer is ignored.
        """
        await self.servicer.enter_graceful_shutdown()
        if self._loop is not None:
            self._loop.cancel()
        pending = [t for t in (self._loop, self._queued, self._running) if t is not None]
        await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            if self.watchers:
                await self.refresh()
            await asyncio.sleep(self._interval)

    async def _refresh_after(self, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(previous)
        self._running, self._queued = asyncio.current_task(), None
        try:
            await self._apply(await self._check())
        finally:
            if self._running is asyncio.current_task():
                self._running = None

    async def _check(self) -> bool:
        try:
            readiness = await self._readiness()
        except Exception as exc:  # readiness must not break the health service
            log.warning("grpc_health_check_failed", error=type(exc).__name__)
            return False
        if readiness.ready is not self._ready:
            log.info("grpc_health", ready=readiness.ready, reason=readiness.reason)
        return readiness.ready

    async def _apply(self, ready: bool) -> None:
        self._ready = ready
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in SERVICES:
            await self.servicer.set(service, status)


class _Servicer(health_aio.HealthServicer):  # type: ignore[misc]
    def __init__(self, owner: ReadinessHealth) -> None:
        super().__init__()
        self._owner = owner

    async def Check(self, request: Any, context: Any) -> Any:
        if not self._gracefully_shutting_down:
            await self._owner.refresh()
        return await super().Check(request, context)

    async def Watch(self, request: Any, context: Any) -> None:
        self._owner.watchers += 1
        try:
            if not self._gracefully_shutting_down:
                await self._owner.refresh()
            await super().Watch(request, context)
        finally:
            self._owner.watchers -= 1
