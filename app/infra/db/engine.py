"""Opening the database: one ``AsyncEngine`` per process, for Postgres or SQLite.

Accepted URLs (anything else is a ``ValueError`` that names the scheme, never the password):

- ``postgresql+asyncpg://...``; ``postgresql://`` and ``postgres://`` mean the same;
- ``sqlite+aiosqlite:///path``; ``sqlite:///path`` means the same. In-memory SQLite is refused:
  every pooled connection would see a different, empty database.

SQLite connections run with foreign keys on, WAL journaling, ``secure_delete`` and a busy
timeout. Every
transaction starts with ``BEGIN IMMEDIATE``: SQLite has one writer at a time, and a transaction
that read first and wants to write after another connection committed fails at once with
"database is locked" (the busy timeout does not apply to that case). Taking the write lock up
front makes concurrent units of work queue (up to the busy timeout) instead of failing. The cost:
on SQLite, a unit of work opened while another one is open *in the same task* waits for it,
so do not nest them. (Python's driver would otherwise begin only at the first write, and reads
would not share the writes' snapshot.)

Engines hide bound parameters from error messages: a parameter may be a wrapped key.

Postgres connections run with ``idle_in_transaction_session_timeout`` (default
``PG_IDLE_IN_TRANSACTION_TIMEOUT_S``, ``EKMS_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS``): a
session that sits idle inside a transaction that long (its process frozen or cut off without
the connection being closed) is ended by the server, which releases its locks, among them the
audit chain head's row lock every appender queues on (docs/audit.md).

A SQLite file that does not exist yet is created here, empty, with mode 0600 (its directory
0700 if missing): SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so
the three are private to the ekms user whatever the umask (``app/infra/files.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.infra.files import create_private_file, private_dir

POSTGRES_DRIVER = "postgresql+asyncpg"
SQLITE_DRIVER = "sqlite+aiosqlite"
_ALIASES = {
    "postgresql": POSTGRES_DRIVER,
    "postgres": POSTGRES_DRIVER,
    POSTGRES_DRIVER: POSTGRES_DRIVER,
    "sqlite": SQLITE_DRIVER,
    SQLITE_DRIVER: SQLITE_DRIVER,
}

SQLITE_BUSY_TIMEOUT_MS = 5_000
PG_POOL_SIZE = 10
PG_MAX_OVERFLOW = 10
PG_CONNECT_TIMEOUT_S = 10.0
PG_POOL_TIMEOUT_S = 10.0
PG_IDLE_IN_TRANSACTION_TIMEOUT_S = 30.0


def normalize_url(url: str | URL) -> URL:
    """The async-driver form of ``url``; ``ValueError`` for an unsupported or malformed one."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("the database URL is malformed") from None
    driver = _ALIASES.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: "
            "use postgresql+asyncpg:// or sqlite+aiosqlite:///path"
        )
    parsed = parsed.set(drivername=driver)
    if driver == SQLITE_DRIVER and parsed.database in (None, "", ":memory:"):
        raise ValueError("in-memory SQLite is not supported: give the database a file path")
    return parsed


def create_engine(
    url: str | URL, *, idle_in_transaction_timeout: float | None = PG_IDLE_IN_TRANSACTION_TIMEOUT_S
) -> AsyncEngine:
    """An engine for ``url`` (see the module docstring for what is accepted).

    ``idle_in_transaction_timeout`` (seconds, Postgres only; ``None`` or 0: the server's own
    setting) bounds how long a session may stay idle inside a transaction."""
    parsed = normalize_url(url)
    if parsed.drivername == SQLITE_DRIVER:
        return _sqlite_engine(parsed)
    return _postgres_engine(parsed, idle_in_transaction_timeout)


def _postgres_engine(url: URL, idle_timeout: float | None) -> AsyncEngine:
    server_settings = {"application_name": "ekms"}
    if idle_timeout:
        server_settings["idle_in_transaction_session_timeout"] = str(
            max(1, round(idle_timeout * 1000))
        )
    return create_async_engine(
        url,
        pool_size=PG_POOL_SIZE,
        max_overflow=PG_MAX_OVERFLOW,
        pool_timeout=PG_POOL_TIMEOUT_S,
        pool_pre_ping=True,
        pool_recycle=1800,
        hide_parameters=True,
        connect_args={
            "timeout": PG_CONNECT_TIMEOUT_S,
            "server_settings": server_settings,
        },
    )


def _sqlite_engine(url: URL) -> AsyncEngine:
    database = url.database
    if database is None:  # normalize_url refuses it; this tells the type checker
        raise ValueError("in-memory SQLite is not supported")
    if not database.startswith("file:"):
        path = Path(database).expanduser()
        private_dir(path.parent)
        create_private_file(path)
    engine = create_async_engine(url, hide_parameters=True)
    event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the driver; _sqlite_on_begin begins instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        # Freed cell space is zeroed, not left for the next write: an overwritten wrapped key
        # must not survive in the page (Debian's SQLite defaults to this, other builds do not).
        cursor.execute("PRAGMA secure_delete = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
