"""The key chain through the real adapters: Postgres (or SQLite), moto's KMS server over HTTP.

moto records key state but does not enforce it (a disabled key still decrypts there), so these
tests prove that ekms reads the state itself, through DescribeKey and ListKeyRotations.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.application.configuration import ConfigInput, configure_ekms
from app.application.crypto import Item
from app.application.kek import rotate_kek
from app.application.modules import ModuleInput, create_module, rotate_module_key
from app.application.policies import PolicyInput, create_policy
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.bootstrap import Container, running
from app.domain.errors import AlreadyExists, DecryptionFailed, KeyUnavailable, NotFound, Reason
from app.domain.values import (
    AccessResult,
    Algorithm,
    Caller,
    ExternalKeyStatus,
    KmsProvider,
    Operation,
    TargetType,
)
from app.infra.settings import Settings
from tests.fixtures.db import dump_all_tables

ADMIN = Caller("admin", frozenset({"ekms.admin", "ekms.key_manager"}))
APP = Caller("billing", frozenset({"billing"}))


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
        for name, algorithm in (
            ("global.billing", Algorithm.AES_256_GCM),
            ("global.search", Algorithm.AES_256_SIV),
        ):
            await create_module(container.ctx, ADMIN, ModuleInput(name, algorithm))
            await create_policy(
                container.ctx,
                ADMIN,
                name,
                PolicyInput(TargetType.ROLE, "billing", frozenset(Operation), AccessResult.TRACK),
            )
        yield container


async def _enc(
    c: Container, value: bytes, module: str = "global.billing", ctx: bytes = b""
) -> bytes:
    result = await c.crypto.encrypt(APP, Item(Target(module=module), value, ctx))
    assert result.data is not None
    return result.data


async def _dec(
    c: Container, blob: bytes, module: str = "global.billing", ctx: bytes = b""
) -> bytes:
    result = await c.crypto.decrypt(APP, Item(Target(module=module), blob, ctx))
    assert result.data is not None
    return result.data


@pytest.mark.parametrize("module", ["global.billing", "global.search"])
async def test_round_trip_both_algorithms(chain: Container, module: str) -> None:
    blob = await _enc(chain, b"IBAN DE89 3704 0044 0532 0130 00", module, b"acct-1")
    assert await _dec(chain, blob, module, b"acct-1") == b"IBAN DE89 3704 0044 0532 0130 00"
    with pytest.raises(DecryptionFailed):
        await _dec(chain, blob, module, b"acct-2")
    with pytest.raises(DecryptionFailed):
        await _dec(chain, blob[:-2], module, b"acct-1")


async def test_unknown_module(chain: Container) -> None:
    with pytest.raises(NotFound):
        await _enc(chain, b"x", "global.unknown")


async def test_second_configuration_refused(chain: Container, kms_key: str) -> None:
    with pytest.raises(AlreadyExists):
        await configure_ekms(chain.ctx, ADMIN, ConfigInput(KmsProvider.AWS, kms_key))


async def test_disabled_key_is_read_from_describe_key_and_stops_the_chain(
    chain: Container, kms_admin: Any, kms_key: str
) -> None:
    blob = await _enc(chain, b"salary")
    kms_admin.disable_key(KeyId=kms_key)
    # moto would still decrypt with the disabled key: the refusal below is ekms's own doing.
    report = await sync_external_key(chain.ctx)
    assert report.status is ExternalKeyStatus.DISABLED
    with pytest.raises(KeyUnavailable) as err:
        await _dec(chain, blob)
    assert err.value.reason is Reason.EXTERNAL_KEY_DISABLED
    kms_admin.enable_key(KeyId=kms_key)
    await sync_external_key(chain.ctx)
    assert await _dec(chain, blob) == b"salary"


async def test_pending_deletion_then_cancel_leaves_it_disabled(
    chain: Container, kms_admin: Any, kms_key: str
) -> None:
    kms_admin.schedule_key_deletion(KeyId=kms_key, PendingWindowInDays=7)
    report = await sync_external_key(chain.ctx)
    assert report.status is ExternalKeyStatus.PENDING_DELETION
    kms_admin.cancel_key_deletion(KeyId=kms_key)
    assert (await sync_external_key(chain.ctx)).status is ExternalKeyStatus.DISABLED


async def test_aws_rotation_rewraps_the_ekek_with_the_same_kek(
    chain: Container, kms_admin: Any, kms_key: str
) -> None:
    blob = await _enc(chain, b"before rotation")
    async with chain.ctx.uow() as uow:
        before = await uow.instance_keys.get_active()
    kms_admin.rotate_key_on_demand(KeyId=kms_key)
    report = await sync_external_key(chain.ctx)
    async with chain.ctx.uow() as uow:
        after = await uow.instance_keys.get_active()
    assert before is not None and after is not None
    assert report.rewrapped
    assert after.wrapped_kek != before.wrapped_kek
    assert (
        after.fingerprint == before.fingerprint and after.rotation_marker != before.rotation_marker
    )
    chain.ctx.chain.purge()  # a cold start must unwrap the rewrapped EKEK through KMS
    assert await _dec(chain, blob) == b"before rotation"


async def test_rotations_keep_everything_readable_and_no_key_is_stored_in_clear(
    chain: Container, kms_admin: Any
) -> None:
    old = await _enc(chain, b"v1 data", ctx=b"r1")
    await rotate_module_key(chain.ctx, ADMIN, "global.billing")
    new = await _enc(chain, b"v2 data", ctx=b"r2")
    search = await _enc(chain, b"findme", "global.search")
    await rotate_kek(chain.ctx, ADMIN)
    chain.ctx.chain.purge()
    assert await _dec(chain, old, ctx=b"r1") == b"v1 data"
    assert await _dec(chain, new, ctx=b"r2") == b"v2 data"
    assert await _dec(chain, search, "global.search") == b"findme"
    # Every plaintext key this process holds, searched for in every table, raw and base64.
    snap = await chain.ctx.chain.snapshot()
    secrets: list[bytes] = []
    async with chain.ctx.uow() as uow:
        for ekek in await uow.instance_keys.list():
            kek = kms_admin.decrypt(
                CiphertextBlob=ekek.wrapped_kek, EncryptionContext=ekek.encryption_context
            )["Plaintext"]
            assert len(kek) == 32
            secrets.append(kek)
    for view in snap.modules.values():
        for key in view.keys.values():
            secrets.append(_raw_dek(chain, view, key))
    await chain.ctx.audit.flush()
    dump = await dump_all_tables(chain.engine)
    assert len(dump) > 1000
    for secret in filter(None, secrets):
        for form in (
            secret,
            base64.b64encode(secret),
            base64.urlsafe_b64encode(secret),
            secret.hex().encode(),
        ):
            assert form not in dump


def _raw_dek(chain: Container, view: Any, key: Any) -> bytes:
    """Unwrap a DEK the way the chain does, to know what must never be stored."""
    snap = chain.ctx.chain.cached
    assert snap is not None and snap.kek is not None and key.wrapped_dek is not None
    return snap.kek.unwrap(key.wrapped_dek, key.module_id, key.version)


def _sample(name: str) -> float:
    from app.infra.metrics import REGISTRY

    return sum(
        s.value
        for metric in REGISTRY.collect()
        for s in metric.samples
        if s.name == name and s.value is not None
    )


async def test_hot_path_makes_no_kms_call_and_no_query_after_warm_up(chain: Container) -> None:
    blob = await _enc(chain, b"warm")
    assert await _dec(chain, blob) == b"warm"
    kms_before = _sample("ekms_kms_calls_total")
    db_before = _sample("ekms_db_queries_total")
    assert kms_before > 0 and db_before > 0  # the counters do count (configure, module creation)
    for i in range(200):
        assert await _dec(chain, await _enc(chain, b"%d" % i, ctx=b"r"), ctx=b"r") == b"%d" % i
    assert _sample("ekms_kms_calls_total") == kms_before
    assert _sample("ekms_db_queries_total") == db_before
    chain.ctx.chain.purge()  # a cold chain costs one KMS unwrap and one snapshot load
    assert await _dec(chain, blob) == b"warm"
    assert _sample("ekms_kms_calls_total") == kms_before + 1


async def test_a_key_id_that_does_not_exist_reads_as_deleted(
    moto_server: str, aws_env: str, tmp_path: Path, sqlite_url: str
) -> None:
    settings = Settings(
        database_url=sqlite_url,
        kms_provider="aws",
        aws_endpoint_url=moto_server,
        allow_insecure_kms_endpoint=True,
        aws_region=aws_env,
        data_dir=tmp_path,
        jwt_hs256_secret="x" * 40,
        scheduler_enabled=False,
    )
    async with running(settings) as container:
        missing = "11111111-2222-3333-4444-555555555555"
        with pytest.raises(KeyUnavailable) as err:
            await configure_ekms(container.ctx, ADMIN, ConfigInput(KmsProvider.AWS, missing))
        assert err.value.reason is Reason.EXTERNAL_KEY_DELETED
        async with container.ctx.uow() as uow:
            assert await uow.config.get() is None  # nothing was written
