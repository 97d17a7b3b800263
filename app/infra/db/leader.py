"""Which replica runs the scheduled jobs: whoever holds a Postgres advisory lock.

The lock is session-level on a dedicated connection: it is held for as long as that
connection lives, and released by Postgres when the process dies, so another replica takes
over on its next tick. SQLite means one process, which always leads.
"""

from __future__ import annotations

import contextlib

import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.application.ports import Leader

log = structlog.get_logger(__name__)

LOCK_KEY = 0x656B6D73  # "ekms"


class PgAdvisoryLeader:
    """The ``Leader`` of several replicas: whoever holds the advisory lock."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    @property
    def holding(self) -> bool:
        return self._conn is not None

    async def acquire(self) -> bool:
        """True while this process holds the lock; tries to take it when it does not."""
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                # End the transaction the check began: a session left idle in it would be
                # ended by idle_in_transaction_session_timeout, and the lock with it.
                await self._conn.commit()
                return True
            except Exception:  # the connection died: the lock went with it
                await self._drop()
        try:
            conn = await self._engine.connect()
        except Exception as exc:
            log.warning("leader_connect_failed", error=type(exc).__name__)
            return False
        try:
            got = (
                await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY})
            ).scalar()
            await conn.commit()
        except Exception:
            await conn.close()
            return False
        if got:
            self._conn = conn
            log.info("leader_acquired")
            return True
        await conn.close()
        return False

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            await self._drop()


class AlwaysLeader:
    """The ``Leader`` of one process (SQLite)."""

    holding = True

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None


def make_leader(engine: AsyncEngine) -> Leader:
    return PgAdvisoryLeader(engine) if engine.dialect.name == "postgresql" else AlwaysLeader()
