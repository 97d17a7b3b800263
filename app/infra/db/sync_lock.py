"""The external key sync's lock across replicas: a Postgres advisory lock held while it runs.

A replica asked to sync while another one syncs waits for the lock instead of racing it on the
configuration row (``app.application.sync_flight``). The lock is session-level on a connection
of its own, taken for the sync and released after it; that connection is then closed, not
pooled, so no lock can outlive the block (Postgres also releases it when the process dies).
SQLite means one process: nothing to wait for.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.application.context import SoleReplica
from app.application.ports import SyncLock
from app.infra.db.errors import sqlstate, translate_unavailable

log = structlog.get_logger(__name__)

SYNC_LOCK_KEY = 0x656B6D7379  # "ekmsy"; the leader's lock is "ekms"
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired


class PgAdvisorySyncLock:
    """The ``SyncLock`` of several replicas on one Postgres. ``wait_seconds`` bounds the wait
    for a sync stuck elsewhere; past it the block runs without the lock."""

    def __init__(self, engine: AsyncEngine, *, wait_seconds: float = 120.0) -> None:
        self._engine = engine
        self._wait_ms = max(1, int(wait_seconds * 1000))

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[bool]:
        async with translate_unavailable(connecting=True):
            conn = await self._engine.connect()
        held = False
        try:
            async with translate_unavailable():
                held = await self._take(conn, wait=False)
                waited = not held
                if waited:
                    held = await self._take(conn, wait=True)
            yield waited
        finally:
            await self._release(conn, held)

    async def _take(self, conn: AsyncConnection, *, wait: bool) -> bool:
        if not wait:
            query = text("SELECT pg_try_advisory_lock(:k)")
            got = bool((await conn.execute(query, {"k": SYNC_LOCK_KEY})).scalar())
            await conn.commit()
            return got
        limit = text("SELECT set_config('lock_timeout', :ms, true)")  # this transaction only
        await conn.execute(limit, {"ms": f"{self._wait_ms}ms"})
        try:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": SYNC_LOCK_KEY})
        except Exception as exc:
            if sqlstate(exc) != _LOCK_NOT_AVAILABLE:
                raise
            await conn.rollback()
            log.warning("sync_lock_wait_gave_up", waited_ms=self._wait_ms)
            return False
        await conn.commit()
        return True

    async def _release(self, conn: AsyncConnection, held: bool) -> None:
        with contextlib.suppress(Exception):
            if held:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SYNC_LOCK_KEY})
        # Closed, never pooled: a lock granted to a wait that was cancelled, or an unlock that
        # failed, goes with the connection instead of outliving the block in the pool.
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()


def make_sync_lock(engine: AsyncEngine) -> SyncLock:
    """Postgres: ``PgAdvisorySyncLock``; SQLite (one process): ``SoleReplica``."""
    if engine.dialect.name == "postgresql":
        return PgAdvisorySyncLock(engine)
    return SoleReplica()
