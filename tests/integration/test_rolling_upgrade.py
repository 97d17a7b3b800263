"""Rolling upgrades on real Postgres and SQLite: a replica of this release keeps serving after
a newer release migrated the database, as long as the newer schema says this head still may
(``schema_compatibility``, migrations/compat.py); a contracting revision makes it unready.

The "newer release" is this release's migrations plus one revision file, in a directory of its
own, run by Alembic on the same database; the replica is the real container and REST app.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from app.bootstrap import StartupError, running
from app.infra.db import migrate
from app.infra.db.engine import create_engine
from app.infra.db.migrate import SchemaState
from tests.e2e.rest_support import APP_ROLE, AUDITOR, b64, rest_app, settings_for

NEXT = "9001"
FIELD = {"table": "employees", "column": "iban"}

_REVISION = '''"""A newer release's revision ({kind})."""
import sqlalchemy as sa
from alembic import op

from migrations import compat

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None
oldest_serving_head = "{oldest}"


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("note_{revision}", sa.Text(), nullable=True))
    compat.record(revision, oldest_serving_head)


def downgrade() -> None:
    compat.forget(revision)
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("note_{revision}")
'''


def newer_release(tmp_path: Path, *revisions: tuple[str, str]) -> Path:
    """Our migrations plus ``(revision, oldest_serving_head)`` files after our head."""
    scripts = tmp_path / "newer-migrations"
    shutil.copytree(migrate.MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    down = migrate.head_revision()
    for revision, oldest in revisions:
        kind = "expand only" if oldest != revision else "contracting"
        text = _REVISION.format(kind=kind, revision=revision, down=down, oldest=oldest)
        (scripts / "versions" / f"{revision}_newer.py").write_text(text)
        down = revision
    return scripts


async def run_alembic(url: str, scripts: Path, target: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(scripts))

    def upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, target)

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
    finally:
        await engine.dispose()


async def test_an_older_replica_serves_on_an_expand_only_newer_schema(
    db_url: str, tmp_path: Path
) -> None:
    assert await migrate.schema_state(db_url) is SchemaState.AT_HEAD
    await run_alembic(db_url, newer_release(tmp_path, (NEXT, migrate.head_revision())), "head")
    assert await migrate.current_revision(db_url) == NEXT
    assert await migrate.schema_state(db_url) is SchemaState.AHEAD_COMPATIBLE

    # This release starts on it (no migration attempted) and is ready.
    async with rest_app(settings_for(db_url, tmp_path / "replica")) as env:
        ready = await env.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["schema"] == "ahead_compatible"
        await env.seed()
        sealed = await env.ok(
            "POST", "/api/v1/crypto/encrypt", (APP_ROLE,), json={**FIELD, "plaintext": b64(b"x")}
        )
        opened = await env.ok(
            "POST",
            "/api/v1/crypto/decrypt",
            (APP_ROLE,),
            json={**FIELD, "ciphertext": sealed["ciphertext"]},
        )
        assert opened["plaintext"] == b64(b"x")
        assert (await env.call("GET", "/api/v1/ekms/status", (AUDITOR,))).status_code == 200


async def test_a_contracting_newer_schema_makes_an_older_replica_unready(
    db_url: str, tmp_path: Path
) -> None:
    later = str(int(NEXT) + 1)
    scripts = newer_release(tmp_path, (NEXT, migrate.head_revision()), (later, later))
    async with rest_app(settings_for(db_url, tmp_path / "replica")) as env:
        assert (await env.client.get("/readyz")).status_code == 200
        await run_alembic(db_url, scripts, NEXT)
        assert (await env.client.get("/readyz")).status_code == 200  # expand only: still ready
        await run_alembic(db_url, scripts, later)
        unready = await env.client.get("/readyz")
        assert unready.status_code == 503
        assert unready.json()["checks"]["schema"] == "ahead"
        assert unready.json()["reason"] == "SCHEMA_NOT_AT_HEAD"
    assert await migrate.schema_state(db_url) is SchemaState.AHEAD
    # Nor does this release start on it, migrating or not, and the schema stays as it is.
    for auto_migrate in (True, False):
        settings = settings_for(db_url, tmp_path / "again", auto_migrate=auto_migrate)
        with pytest.raises(StartupError, match="ahead of this release"):
            async with running(settings):
                pass
    assert await migrate.current_revision(db_url) == later


async def test_a_newer_schema_without_a_compatibility_row_is_not_trusted(
    db_url: str, tmp_path: Path
) -> None:
    scripts = newer_release(tmp_path, (NEXT, migrate.head_revision()))
    await run_alembic(db_url, scripts, "head")
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM schema_compatibility")
    finally:
        await engine.dispose()
    assert await migrate.schema_state(db_url) is SchemaState.AHEAD


async def test_every_revision_declares_an_oldest_serving_head_at_or_before_itself() -> None:
    known = migrate.known_revisions()
    assert known[-1] == migrate.head_revision()
    script = ScriptDirectory.from_config(migrate.alembic_config())
    for position, revision in enumerate(known):
        module = script.get_revision(revision).module
        assert module.oldest_serving_head in known[: position + 1], revision
