"""Alembic environment for ekms, configured in code (see ``app.infra.db.migrate``).

Online, migrations run on a connection that the caller opened from the async engine and
passed in ``config.attributes["connection"]`` (the caller runs Alembic inside
``AsyncConnection.run_sync``, in one transaction). Without one, for example when a developer
drives Alembic by hand, this module opens the async engine itself from the ``sqlalchemy.url``
option or ``EKMS_DATABASE_URL``. SQLite cannot alter tables in place, so operations are
rendered in batch mode there.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from app.infra.db.engine import create_engine, normalize_url
from app.infra.db.tables import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("EKMS_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or EKMS_DATABASE_URL to run migrations")
    return url


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


def run_offline() -> None:
    """Emit the SQL instead of running it (``alembic upgrade --sql``)."""
    url = normalize_url(_url())
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
    else:
        asyncio.run(_migrate_with_own_engine(_url()))


if context.is_offline_mode():
    run_offline()
else:
    run_online()
