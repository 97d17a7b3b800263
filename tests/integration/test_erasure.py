"""Destroy means gone (issue 10, finding 4), read from the database's own storage.

The review found a destroyed DEK's wrapped bytes still in SQLite's WAL and in Postgres's dead
tuples, and the previous EKEK row kept (still unwrapping through KMS) after a KEK rotation.
These tests read what the database keeps on disk, not what a SELECT returns:

- SQLite: the raw ``.db`` and ``-wal`` files;
- Postgres: every page of the table (and of its TOAST table) with ``pageinspect``'s
  ``get_raw_page``, so dead tuples, free space and line pointers are all searched. The test
  database is ours and we connect as the superuser, so ``CREATE EXTENSION pageinspect`` works.

Each test first checks that the bytes it then expects gone are found, so the reader is proven.
The last test holds a lock on the table: the rewrite gives up after its lock timeout, prunes
instead, and says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from app.application.configuration import ConfigInput, configure_ekms
from app.application.kek import rotate_kek
from app.application.modules import (
    KeyAction,
    ModuleInput,
    change_key_state,
    create_module,
    rotate_module_key,
)
from app.application.ports import KeyStore
from app.bootstrap import Container, running
from app.domain.errors import EkmsError, Reason, ServiceUnavailable
from app.domain.keys import KeyEncryptionKey
from app.domain.values import Algorithm, Caller, KeyState, KmsProvider
from app.infra.db import tables as t
from app.infra.db.engine import create_engine
from app.infra.db.uow import SqlaUnitOfWorkFactory
from app.infra.settings import Settings

ADMIN = Caller("admin", frozenset({"ekms.admin", "ekms.key_manager"}))
MODULES = (("global.billing", Algorithm.AES_256_GCM), ("global.search", Algorithm.AES_256_SIV))


@pytest.fixture
async def chain(
    db_url: str, moto_server: str, aws_env: str, kms_key: str, tmp_path: Path
) -> AsyncIterator[Container]:
    settings = Settings(
        database_url=db_url,
        auto_migrate=False,
        kms_provider="aws",
        aws_endpoint_url=moto_server,
        allow_insecure_kms_endpoint=True,
        aws_region=aws_env,
        data_dir=tmp_path,
        jwt_hs256_secret="x" * 40,
        audit_flush_seconds=60,
    )
    async with running(settings) as container:
        await configure_ekms(container.ctx, ADMIN, ConfigInput(KmsProvider.AWS, kms_key))
        for name, algorithm in MODULES:
            await create_module(container.ctx, ADMIN, ModuleInput(name, algorithm))
        yield container


async def stored(db_url: str, table: str) -> bytes:
    """Everything the database keeps on disk for ``table`` (SQLite: for the whole file)."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        files = [Path(url.database), Path(f"{url.database}-wal")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        toast = await conn.fetchval(
            "SELECT reltoastrelid::regclass::text FROM pg_class "
            "WHERE oid = $1::regclass AND reltoastrelid <> 0",
            table,
        )
        pages: list[bytes] = []
        for relation in filter(None, (table, toast)):
            blocks = await conn.fetchval(
                "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::int",
                relation,
            )
            for block in range(blocks):
                pages.append(await conn.fetchval("SELECT get_raw_page($1, $2)", relation, block))
        return b"".join(pages)
    finally:
        await conn.close()


async def rows(chain: Container, table: Any) -> list[Any]:
    async with chain.engine.connect() as conn:
        return list((await conn.execute(select(table))).mappings())


async def test_destroy_leaves_no_copy_of_the_wrapped_dek_in_the_database(
    chain: Container, db_url: str
) -> None:
    await rotate_module_key(chain.ctx, ADMIN, "global.billing")  # v1 is now Deactivated
    async with chain.ctx.uow() as uow:
        module = await uow.modules.get_by_name("global.billing")
        assert module is not None
        v1 = await uow.keys.get(module.id, 1)
    assert v1 is not None and v1.wrapped_dek is not None
    wrapped = v1.wrapped_dek
    assert wrapped in await stored(db_url, "module_keys")  # the reader finds it while it lives

    key = await change_key_state(chain.ctx, ADMIN, "global.billing", 1, KeyAction.DESTROY)

    assert key.state is KeyState.DESTROYED
    [row] = [
        r
        for r in await rows(chain, t.module_keys)
        if (r["module_id"], r["version"]) == (module.id, 1)
    ]
    assert row["wrapped_dek"] is None and row["kek_id"] is None
    assert wrapped not in await stored(db_url, "module_keys")


async def test_kek_rotation_deletes_the_old_ekek_and_only_the_new_kek_unwraps(
    chain: Container, db_url: str, kms_admin: Any
) -> None:
    [old] = await rows(chain, t.external_instance_keys)
    old_deks = [r["wrapped_dek"] for r in await rows(chain, t.module_keys)]
    assert old["wrapped_kek"] in await stored(db_url, "external_instance_keys")
    before = await stored(db_url, "module_keys")
    assert old_deks and all(dek in before for dek in old_deks)

    result = await rotate_kek(chain.ctx, ADMIN)

    ekeks = await rows(chain, t.external_instance_keys)
    assert [str(r["id"]) for r in ekeks] == [result.new_kek_id]  # the old row is gone
    for row in ekeks:  # what a KMS unwrap of anything left in the table yields
        raw = kms_admin.decrypt(
            CiphertextBlob=row["wrapped_kek"], EncryptionContext=row["encryption_context"]
        )["Plaintext"]
        assert KeyEncryptionKey(row["id"], raw).fingerprint == result.new_fingerprint
        assert row["fingerprint"] != old["fingerprint"]
    assert {str(r["kek_id"]) for r in await rows(chain, t.module_keys)} == {result.new_kek_id}
    assert old["wrapped_kek"] not in await stored(db_url, "external_instance_keys")
    after = await stored(db_url, "module_keys")
    assert not any(dek in after for dek in old_deks)


async def test_racing_kek_rotations_leave_one_whole_chain(chain: Container, kms_admin: Any) -> None:
    outcomes = await asyncio.gather(
        rotate_kek(chain.ctx, ADMIN), rotate_kek(chain.ctx, ADMIN), return_exceptions=True
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], EkmsError) and lost[0].reason is Reason.CONCURRENT_UPDATE
    [row] = await rows(chain, t.external_instance_keys)
    assert str(row["id"]) == won[0].new_kek_id and row["active"]
    kek = KeyEncryptionKey(
        row["id"],
        kms_admin.decrypt(
            CiphertextBlob=row["wrapped_kek"], EncryptionContext=row["encryption_context"]
        )["Plaintext"],
    )
    for key in await rows(chain, t.module_keys):
        assert key["kek_id"] == kek.id
        kek.unwrap(key["wrapped_dek"], key["module_id"], key["version"])


async def test_a_table_kept_locked_is_pruned_and_reported_not_rewritten(pg_url: str) -> None:
    engine = create_engine(pg_url)
    holder = await asyncpg.connect(
        make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("LOCK TABLE module_keys IN ACCESS SHARE MODE")  # blocks FULL only
        with pytest.raises(ServiceUnavailable) as err:
            await SqlaUnitOfWorkFactory(engine).erase_dead_rows(KeyStore.MODULE_KEYS)
        assert "not rewritten" in str(err.value)
        await transaction.rollback()
        async with engine.connect() as conn:  # the pooled connection got its lock_timeout back
            assert (await conn.exec_driver_sql("SHOW lock_timeout")).scalar_one() == "0"
    finally:
        await holder.close()
        await engine.dispose()
