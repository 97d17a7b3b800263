"""Opening the database: URL forms, SQLite pragmas, Postgres pool settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from app.infra.db.engine import create_engine, normalize_url


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql+asyncpg://u:p@db:5432/ekms", "postgresql+asyncpg"),
        ("postgresql://u:p@db:5432/ekms", "postgresql+asyncpg"),
        ("postgres://u:p@db/ekms", "postgresql+asyncpg"),
        ("sqlite+aiosqlite:///data/ekms.db", "sqlite+aiosqlite"),
        ("sqlite:///data/ekms.db", "sqlite+aiosqlite"),
    ],
)
def test_urls_are_rewritten_to_the_async_drivers(url: str, driver: str) -> None:
    normalized = normalize_url(url)
    assert normalized.drivername == driver
    assert normalized.database in ("ekms", "data/ekms.db")


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:s3cret@db/ekms",
        "postgresql+psycopg2://root:s3cret@db/ekms",
        "sqlite://",
        "sqlite:///:memory:",
        "not a url",
    ],
)
def test_unsupported_urls_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(ValueError) as err:
        create_engine(url)
    assert "s3cret" not in str(err.value)


async def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "ekms.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        async with engine.connect() as conn:
            pragmas = {
                name: (await conn.execute(text(f"PRAGMA {name}"))).scalar_one()
                for name in ("foreign_keys", "journal_mode", "busy_timeout")
            }
    finally:
        await engine.dispose()
    assert path.parent.is_dir()
    assert pragmas == {"foreign_keys": 1, "journal_mode": "wal", "busy_timeout": 5000}


@pytest.mark.postgres
async def test_postgres_engine(pg_url: str) -> None:
    engine = create_engine(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert engine.dialect.driver == "asyncpg"
        assert engine.pool._pre_ping
        async with engine.connect() as conn:
            name = (await conn.execute(text("SHOW application_name"))).scalar_one()
        assert name == "ekms"
    finally:
        await engine.dispose()
