"""The in-process APScheduler job: every ``tick_seconds`` the leader replica runs what is due.

The sync interval lives on the EKMS configuration (``sync_interval``), so changing it takes
effect on the next tick without a restart; the tick only decides how promptly.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.application.context import AppContext
from app.application.maintenance import TickReport, run_due_jobs
from app.application.ports import Leader
from app.application.sync import ProbeReport, probe_revocation
from app.domain.errors import EkmsError

log = structlog.get_logger(__name__)

_R = TypeVar("_R")


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class MaintenanceScheduler:
    def __init__(
        self,
        ctx: AppContext,
        leader: Leader,
        *,
        tick_seconds: float = 60.0,
        revocation_probe_seconds: float | None = None,
    ) -> None:
        self._ctx = ctx
        self._leader = leader
        self.tick_seconds = tick_seconds
        self.revocation_probe_seconds = revocation_probe_seconds
        self.probes = 0
        self.replica = replica_name()
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self.ticks = 0
        self.last_report: TickReport | None = None
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._closing = False

    async def tick(self) -> TickReport | None:
        """One maintenance tick (leader only): the sync when due, lifecycle automation."""
        return await self._tracked(self._tick)

    async def probe(self) -> ProbeReport | None:
        """The revocation probe (leader only): one unwrap of the EKEK."""
        return await self._tracked(self._probe)

    async def _tracked(self, job: Callable[[], Awaitable[_R | None]]) -> _R | None:
        """Run a job unless closing, known to ``aclose`` while it runs."""
        if self._closing:
            return None
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            return await job()
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _tick(self) -> TickReport | None:
        if not await self._leader.acquire():
            return None
        self.ticks += 1
        try:
            report = await run_due_jobs(self._ctx, self.replica)
        except asyncio.CancelledError:
            raise
        except Exception:  # a job must never kill the scheduler
            log.exception("scheduler_tick_failed")
            return None
        self.last_report = report
        if report.ran or report.errors:
            log.info("scheduler_tick", ran=report.ran, errors=report.errors, replica=self.replica)
        return report

    async def _probe(self) -> ProbeReport | None:
        try:
            if not await self._leader.acquire():
                return None
            self.probes += 1
            report = await probe_revocation(self._ctx)
        except EkmsError as exc:  # not configured, database away: the next probe tries again
            log.warning("revocation_probe_failed", reason=exc.reason.value)
            return None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("revocation_probe_failed")
            return None
        if report.changed:
            log.error("revocation_probe_refused", reason=report.refusal and report.refusal.reason)
        return report

    def start(self) -> None:
        if self.revocation_probe_seconds:
            self._every(self.revocation_probe_seconds, self.probe, "ekms-revocation-probe")
        self._every(
            self.tick_seconds, self.tick, "ekms-maintenance", next_run_time=datetime.now(UTC)
        )
        self._scheduler.start()

    def _every(
        self, seconds: float, job: Callable[[], Awaitable[object]], job_id: str, **extra: Any
    ) -> None:
        """A job every ``seconds``: never two runs at once, missed runs coalesced into one."""
        self._scheduler.add_job(
            job, "interval", seconds=seconds, id=job_id, max_instances=1, coalesce=True, **extra
        )

    async def aclose(self, grace_seconds: float = 10.0) -> None:
        """Stop scheduling; let a tick in progress finish (cancel it past the grace period),
        so no job is left holding a connection when the engine is disposed."""
        self._closing = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._leader.release()
