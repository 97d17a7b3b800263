"""Schema migrations (Alembic), driven in code for ``ekms migrate`` and ``ekms serve``.

No ``alembic.ini``: the script location is the ``migrations`` package that ships in the wheel.
Alembic's synchronous API runs on a connection of the async engine through ``run_sync``, in one
transaction, so a failed upgrade leaves the schema as it was (DDL is transactional on both
Postgres and SQLite).

Each function takes a URL (it opens and disposes its own engine) or a running ``AsyncEngine``
(reused, not disposed: cheap enough for a readiness probe). Failing to reach the database is
``ServiceUnavailable(DATABASE_UNAVAILABLE)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, MetaData, String, Table, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import migrations
from app.infra.db.engine import create_engine
from app.infra.db.errors import translate_unavailable

MIGRATIONS_DIR = Path(migrations.__file__).parent

Database = str | AsyncEngine


def alembic_config() -> Config:
    """An Alembic configuration pointing at the packaged migrations."""
    config = Config()
    # Config values go through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


@cache
def head_revision() -> str:
    """The newest revision in the packaged migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError("the migrations package has no revisions")
    return head


async def upgrade_to_head(url: Database) -> None:
    await _run_command(url, lambda config: command.upgrade(config, "head"))


async def downgrade_to(url: Database, revision: str) -> None:
    """Downgrade to ``revision``; ``"base"`` drops the whole schema."""
    await _run_command(url, lambda config: command.downgrade(config, revision))


async def current_revision(url: Database) -> str | None:
    """The database's revision; ``None`` for a database that was never migrated."""
    async with _connection(url) as conn:
        async with translate_unavailable():
            return await conn.run_sync(_current)


async def is_at_head(url: Database) -> bool:
    return await current_revision(url) == head_revision()


class SchemaState(StrEnum):
    """Where the database's schema stands for this process's code."""

    AT_HEAD = "ok"
    AHEAD_COMPATIBLE = "ahead_compatible"  # migrated past our head; it says we still serve
    AHEAD = "ahead"  # migrated past our head, and not (or not known to be) for us
    BEHIND = "behind"  # an older revision, or never migrated


@cache
def known_revisions() -> tuple[str, ...]:
    """Every revision in the packaged migrations, base first."""
    script = ScriptDirectory.from_config(alembic_config())
    return tuple(reversed([rev.revision for rev in script.walk_revisions()]))


async def schema_state(url: Database) -> SchemaState:
    """At head, behind, or ahead and (per its ``schema_compatibility`` row) still ours to serve."""
    async with _connection(url) as conn:
        async with translate_unavailable():
            current, oldest = await conn.run_sync(_current_and_oldest_serving)
    known = known_revisions()
    if current == head_revision():
        return SchemaState.AT_HEAD
    if current is None or current in known:
        return SchemaState.BEHIND
    # A revision we do not have: a newer release migrated. Serve if it says our head still may.
    if oldest is not None and oldest in known:
        return SchemaState.AHEAD_COMPATIBLE
    return SchemaState.AHEAD


# One Table and one statement for the life of the process: Alembic's MigrationContext builds a
# new Table per call, and the readiness probe (once a second) then filled the engine's
# compiled-statement cache with copies of the same SELECT, evicting the app's statements.
_ALEMBIC_VERSION = Table("alembic_version", MetaData(), Column("version_num", String(32)))
_SELECT_VERSION = select(_ALEMBIC_VERSION.c.version_num)
_COMPATIBILITY = Table(
    "schema_compatibility",
    MetaData(),
    Column("revision", String(32)),
    Column("oldest_serving_head", String(32)),
)


def _current_and_oldest_serving(connection: Connection) -> tuple[str | None, str | None]:
    current = _current(connection)
    # Only a schema ahead of ours is looked up: the probe at head stays one SELECT.
    if current is None or current in known_revisions():
        return current, None
    if not inspect(connection).has_table(_COMPATIBILITY.name):
        return current, None
    row = _COMPATIBILITY.c.revision == current
    oldest = connection.execute(select(_COMPATIBILITY.c.oldest_serving_head).where(row))
    return current, oldest.scalar_one_or_none()


def _current(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    versions = connection.execute(_SELECT_VERSION).scalars().all()
    if len(versions) > 1:  # branches: let Alembic say which (never the case here: linear)
        return MigrationContext.configure(connection).get_current_revision()
    return versions[0] if versions else None


async def _run_command(url: Database, action: Callable[[Config], None]) -> None:
    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection  # env.py migrates on this connection
        action(config)

    async with _connection(url) as conn:
        async with translate_unavailable():
            # Alembic sees a transaction already open and runs every revision inside it.
            async with conn.begin():
                await conn.run_sync(run)


@asynccontextmanager
async def _connection(url: Database) -> AsyncIterator[AsyncConnection]:
    engine = create_engine(url) if isinstance(url, str) else url
    try:
        async with translate_unavailable(connecting=True):
            conn = await engine.connect()
        try:
            yield conn
        finally:
            await conn.close()
    finally:
        if isinstance(url, str):
            await engine.dispose()
