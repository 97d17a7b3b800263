"""Erasing what an UPDATE or DELETE leaves behind, so overwritten key material is gone.

- Postgres keeps every superseded row version (a dead tuple) in the table's heap until VACUUM
  prunes it, and even then the pruned bytes stay in the page's free space (Postgres does not
  zero it; the test found an old EKEK there after a plain VACUUM). So the table is rewritten
  with ``VACUUM (FULL)``: fresh pages holding only the live rows, the old file unlinked. It
  takes an ACCESS EXCLUSIVE lock on the (small) table for the rewrite, so it waits at most
  ``VACUUM_LOCK_TIMEOUT_MS`` for the lock; when the table stays busy, a plain ``VACUUM`` prunes
  the dead tuples instead and the call reports the erasure incomplete. ``VACUUM`` cannot run
  inside a transaction block: it runs on an AUTOCOMMIT connection, after the change committed.
  It keeps a dead row that a transaction still running anywhere in the cluster (another
  database's ``CREATE DATABASE`` did, in the tests) might see, so it first waits, at most
  ``HORIZON_WAIT_SECONDS``, until every transaction that had an id before the commit ended.
  (A read-only REPEATABLE READ transaction opened before the commit has no id and can still
  hold a row back; the call cannot see that case.)
- SQLite zeroes freed space at once (``PRAGMA secure_delete``, set on every connection), but in
  WAL mode the pages as they were before the change stay in the ``-wal`` file until a
  checkpoint: ``PRAGMA wal_checkpoint(TRUNCATE)`` copies the current pages into the database
  file and truncates the WAL to zero bytes. It runs on the raw driver connection, outside the
  ``BEGIN IMMEDIATE`` every SQLAlchemy transaction starts with.

Neither touches copies outside the database's own files: Postgres's WAL segments and archives,
replicas, backups, file-system snapshots. The README's "Destroy and backups" says what that means.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.application.ports import KeyStore
from app.domain.errors import Reason, ServiceUnavailable
from app.infra.db import tables as t
from app.infra.db import tables_xks
from app.infra.db.errors import sqlstate, translate_unavailable
from app.infra.db.tables_local import local_instance_keys

VACUUM_LOCK_TIMEOUT_MS = 2_000
HORIZON_WAIT_SECONDS = 10.0
_HORIZON_POLL_SECONDS = 0.05
_LOCK_NOT_AVAILABLE = "55P03"

TABLES = {
    KeyStore.MODULE_KEYS: t.module_keys.name,
    KeyStore.INSTANCE_KEYS: t.external_instance_keys.name,
    KeyStore.XKS_KEYS: tables_xks.xks_keys.name,
    KeyStore.XKS_STORES: tables_xks.xks_stores.name,
    KeyStore.LOCAL_KEKS: local_instance_keys.name,
}


async def erase_dead_rows(engine: AsyncEngine, stores: tuple[KeyStore, ...]) -> None:
    """VACUUM the tables of ``stores`` (Postgres) or checkpoint and truncate the WAL (SQLite)."""
    tables = sorted({TABLES[store] for store in stores})
    if not tables:
        return
    async with translate_unavailable(connecting=True):
        if engine.dialect.name == "postgresql":
            await _vacuum(engine, tables)
        else:
            await _checkpoint(engine)


async def _vacuum(engine: AsyncEngine, tables: list[str]) -> None:
    busy: list[str] = []
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        quote = autocommit.dialect.identifier_preparer.quote
        horizon_passed = await _wait_for_horizon(autocommit)
        await autocommit.exec_driver_sql(f"SET lock_timeout = {VACUUM_LOCK_TIMEOUT_MS}")
        try:
            for table in map(quote, tables):
                if not await _rewrite(autocommit, table):
                    await autocommit.exec_driver_sql(f"VACUUM {table}")
                    busy.append(table)
        finally:
            await autocommit.exec_driver_sql("RESET lock_timeout")
    if not horizon_passed:
        raise ServiceUnavailable(
            "a transaction older than the change kept running: dead rows may remain",
            reason=Reason.DATABASE_UNAVAILABLE,
        )
    if busy:
        raise ServiceUnavailable(
            f"{', '.join(busy)} stayed locked: dead rows pruned, the table not rewritten",
            reason=Reason.DATABASE_UNAVAILABLE,
        )


async def _wait_for_horizon(conn: AsyncConnection) -> bool:
    """Wait until the oldest transaction running in the cluster started after this moment
    (the snapshot's xmin passes the current xmax); False if it did not within the bound."""
    marker = (await conn.execute(text(_XMAX))).scalar_one()
    deadline = time.monotonic() + HORIZON_WAIT_SECONDS
    while not (await conn.execute(text(_PASSED), {"marker": marker})).scalar_one():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_HORIZON_POLL_SECONDS)
    return True


_XMAX = "SELECT CAST(pg_snapshot_xmax(pg_current_snapshot()) AS text)"
_PASSED = "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= CAST(CAST(:marker AS text) AS xid8)"


async def _rewrite(conn: AsyncConnection, table: str) -> bool:
    """``VACUUM (FULL)``; False when the table's lock did not come within the lock timeout."""
    try:
        await conn.exec_driver_sql(f"VACUUM (FULL) {table}")
    except DBAPIError as exc:
        if sqlstate(exc) != _LOCK_NOT_AVAILABLE:
            raise
        return False
    return True


async def _checkpoint(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection  # aiosqlite.Connection, in autocommit mode
        if driver is None:  # pragma: no cover - a checked-out connection always has one
            raise RuntimeError("no driver connection")
        async with driver.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
            busy, _frames, _copied = await cursor.fetchone()
    if busy:
        # Another connection was reading an older snapshot past the busy timeout.
        raise ServiceUnavailable(
            "the SQLite WAL could not be checkpointed: the database is busy",
            reason=Reason.DATABASE_UNAVAILABLE,
        )
