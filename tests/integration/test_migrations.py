"""The Alembic migrations on real Postgres and SQLite: up, down, up, and equal to tables.py."""

from __future__ import annotations

import io
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, UniqueConstraint, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app.infra.db import migrate
from app.infra.db.engine import create_engine
from app.infra.db.tables import metadata
from app.infra.db.triggers import AUDIT_TRIGGERS, CHECKPOINT_TRIGGERS

ALEMBIC_TABLE = "alembic_version"
PARTIAL_UNIQUE_INDEXES = {
    "external_instance_keys": "uq_external_instance_keys_one_active",
    "module_keys": "uq_module_keys_one_active",
}


def test_head_revision() -> None:
    assert migrate.head_revision() == "0014"
    assert migrate.MIGRATIONS_DIR.joinpath("env.py").is_file()


@pytest.mark.parametrize("url", ["postgresql://ekms@db/ekms", "sqlite:///ekms.db"])
def test_offline_mode_renders_the_sql(url: str) -> None:
    config = migrate.alembic_config()
    config.output_buffer = io.StringIO()
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()
    assert sql.count("CREATE TABLE") == len(metadata.tables) + 1  # + alembic_version
    assert "CREATE TRIGGER audit_events_no_delete" in sql
    assert "CREATE UNIQUE INDEX uq_module_keys_one_active" in sql


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def _triggers(engine: AsyncEngine) -> set[str]:
    if engine.dialect.name == "postgresql":
        query = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    async with engine.connect() as conn:
        return set((await conn.execute(text(query))).scalars())


def _append_only_triggers(engine: AsyncEngine) -> set[str]:
    name = engine.dialect.name
    return set(AUDIT_TRIGGERS[name]) | set(CHECKPOINT_TRIGGERS[name])


async def _pg_functions(engine: AsyncEngine) -> set[str]:
    query = "SELECT proname FROM pg_proc WHERE proname LIKE 'ekms%'"
    async with engine.connect() as conn:
        return set((await conn.execute(text(query))).scalars())


async def test_upgrade_downgrade_upgrade(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    expected_tables = set(metadata.tables) | {ALEMBIC_TABLE}
    try:
        assert await migrate.current_revision(empty_db_url) is None
        assert not await migrate.is_at_head(empty_db_url)

        await migrate.upgrade_to_head(empty_db_url)
        assert await migrate.current_revision(empty_db_url) == migrate.head_revision()
        assert await migrate.is_at_head(empty_db_url)
        assert await _tables(engine) == expected_tables
        assert await _triggers(engine) == _append_only_triggers(engine)

        await migrate.upgrade_to_head(empty_db_url)  # idempotent
        assert await migrate.is_at_head(empty_db_url)

        await migrate.downgrade_to(empty_db_url, "base")
        assert await migrate.current_revision(empty_db_url) is None
        assert not await migrate.is_at_head(empty_db_url)
        assert await _tables(engine) == {ALEMBIC_TABLE}
        assert await _triggers(engine) == set()
        if engine.dialect.name == "postgresql":
            assert await _pg_functions(engine) == set()

        await migrate.upgrade_to_head(empty_db_url)
        assert await migrate.is_at_head(engine)  # an engine works too, and is not disposed
        assert await _tables(engine) == expected_tables
    finally:
        await engine.dispose()


def _compare(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _schema(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in inspector.get_table_names():
        if table == ALEMBIC_TABLE:
            continue
        schema[table] = {
            "columns": {c["name"]: c["nullable"] for c in inspector.get_columns(table)},
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": {
                i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")  # Postgres: a unique constraint's index
            },
            "unique": {
                u["name"]: tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            },
            "foreign_keys": {
                (tuple(f["constrained_columns"]), f["referred_table"])
                for f in inspector.get_foreign_keys(table)
            },
            "checks": {c["name"] for c in inspector.get_check_constraints(table)},
        }
    return schema


def _metadata_schema() -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for table in metadata.sorted_tables:
        schema[table.name] = {
            "columns": {c.name: c.nullable for c in table.columns},
            "primary_key": [c.name for c in table.primary_key.columns],
            "indexes": {
                i.name: (tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes
            },
            "unique": {
                c.name: tuple(col.name for col in c.columns)
                for c in table.constraints
                if isinstance(c, UniqueConstraint)
            },
            "foreign_keys": {
                ((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys
            },
            "checks": {c.name for c in table.constraints if isinstance(c, CheckConstraint)},
        }
    return schema


async def test_migrated_schema_equals_tables_py(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            differences = await conn.run_sync(_compare)
            schema = await conn.run_sync(_schema)
        assert differences == []
        assert schema == _metadata_schema()
        assert await _triggers(engine) == _append_only_triggers(engine)
        await _assert_partial_indexes(engine)
    finally:
        await engine.dispose()


async def _assert_partial_indexes(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    else:
        query = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name"
    async with engine.connect() as conn:
        for name in PARTIAL_UNIQUE_INDEXES.values():
            definition = (await conn.execute(text(query), {"name": name})).scalar_one()
            assert "UNIQUE" in definition.upper() and "WHERE" in definition.upper(), definition
