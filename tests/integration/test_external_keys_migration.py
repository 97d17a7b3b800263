"""Migration 0006 on real Postgres and SQLite: a chain made on the previous schema (0004) comes
out of the upgrade with its key as the first external key (the configuration's id), its EKEK
naming it, the policy ``any``, and the same ciphertext decrypting."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from sqlalchemy import text

from app.application.configuration import get_config
from app.application.crypto import Item
from app.application.external_keys import list_external_keys
from app.application.targets import Target
from app.bootstrap import running
from app.domain.values import RevocationPolicy
from app.infra.db import migrate
from app.infra.db.engine import create_engine
from app.infra.settings import Settings
from tests.chain_support import APP, grant_module

TARGET = Target(module="global.migrated")


def _settings(url: str, data_dir: Path, root_key: str) -> Settings:
    return Settings(
        database_url=url,
        kms_provider="local",
        local_root_key=root_key,
        jwt_hs256_secret="m" * 40,
        data_dir=data_dir,
        scheduler_enabled=False,
        metrics_port=None,
    )


async def test_a_chain_from_the_previous_schema_keeps_its_key_as_the_first(
    empty_db_url: str, tmp_path: Path
) -> None:
    root_key = base64.b64encode(os.urandom(32)).decode()
    await migrate.upgrade_to_head(empty_db_url)
    async with running(_settings(empty_db_url, tmp_path, root_key)) as first_run:
        ctx = first_run.ctx
        await grant_module(ctx, TARGET.module or "")
        blob = (await first_run.crypto.encrypt(APP, Item(TARGET, b"kept"))).data
        config_id = (await get_config(ctx)).id
    assert blob is not None

    await migrate.downgrade_to(empty_db_url, "0006")  # the schema the previous head made
    await migrate.upgrade_to_head(empty_db_url)

    engine = create_engine(empty_db_url)
    try:
        async with engine.connect() as conn:
            keys = (await conn.execute(text("SELECT id, position FROM external_keys"))).all()
            ekeks = (
                await conn.execute(
                    text("SELECT external_key_id, kek_id FROM external_instance_keys")
                )
            ).all()
            policy = (await conn.execute(text("SELECT revocation_policy FROM ekms_config"))).one()
    finally:
        await engine.dispose()
    assert [(str(k[0]).replace("-", ""), k[1]) for k in keys] == [(config_id.hex, 0)]
    assert [(str(e[0]).replace("-", ""), e[1]) for e in ekeks] == [(config_id.hex, None)]
    assert policy[0] == RevocationPolicy.ANY.value

    async with running(_settings(empty_db_url, tmp_path, root_key)) as again:
        (only,) = await list_external_keys(again.ctx)
        assert only.key.id == config_id and only.first and only.ekek is not None
        assert (await again.crypto.decrypt(APP, Item(TARGET, blob))).data == b"kept"
