"""The local KEK protected by a provider of the operator's choice (``EKMS_LOCAL_KEK_PROVIDER``):
a real SoftHSM2 token, and PyKMIP's real server, no local root key in the process at all,
Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.application.crypto import Item
from app.application.local_kek_rotation import rotate_local_kek
from app.application.modules import ModuleInput, create_module
from app.application.policies import PolicyInput, create_policy
from app.application.targets import Target
from app.bootstrap import running
from app.bootstrap._errors import StartupError
from app.bootstrap._providers import local_kek_ref
from app.domain.errors import KeyUnavailable, Reason
from app.domain.local_kek import PROTECTOR, PROTECTOR_KEY
from app.domain.values import AccessResult, KmsProvider, Operation, TargetType
from app.infra.settings import Settings
from tests.chain_support import ADMIN, APP, node_settings, open_module
from tests.fixtures.kmip import KmipAdmin, KmipServer
from tests.fixtures.pkcs11 import HsmAdmin, SoftHsmToken

LOCAL = Target(module="global.catalog")
EXTERNAL = Target(module="global.hsm")


def _settings(pg_url: str, token: SoftHsmToken, tmp_path: Path, local_key: str) -> Settings:
    return node_settings(
        pg_url,
        tmp_path,
        secret="z" * 40,
        kms_provider="pkcs11",
        pkcs11_library=token.library,
        pkcs11_token_label=token.label,
        pkcs11_pin=token.pin,
        local_kek_provider="pkcs11",
        local_kek_key_id=local_key,
    )


async def test_the_local_kek_under_an_hsm_key_serves_rotates_and_stops_with_that_key(
    pg_url: str, pkcs11_token: SoftHsmToken, pkcs11_key: str, hsm_admin: HsmAdmin, tmp_path: Path
) -> None:
    local_key = "local-kek-protector"
    hsm_admin.create(local_key, b"\x02")
    settings = _settings(pg_url, pkcs11_token, tmp_path, local_key)
    assert settings.local_root_key is None and settings.local_root_key_file is None
    async with running(settings) as node:
        await open_module(node.ctx, KmsProvider.PKCS11, pkcs11_key, EXTERNAL.module or "")
        await create_module(node.ctx, ADMIN, ModuleInput("global.catalog", external_wrap=False))
        grant = PolicyInput(TargetType.ROLE, "svc", frozenset(Operation), AccessResult.TRACK)
        await create_policy(node.ctx, ADMIN, "global.catalog", grant)
        sku = (await node.crypto.encrypt(APP, Item(LOCAL, b"sku 42"))).data
        salary = (await node.crypto.encrypt(APP, Item(EXTERNAL, b"salary"))).data
        assert sku is not None and salary is not None
        async with node.ctx.uow() as uow:
            row = await uow.local_keks.get()
        assert row is not None
        assert row.encryption_context[PROTECTOR] == "pkcs11"
        assert row.encryption_context[PROTECTOR_KEY] == local_key

    async with running(settings) as node:  # a restart unwraps the local KEK through the HSM
        assert (await node.crypto.decrypt(APP, Item(LOCAL, sku))).data == b"sku 42"
        rotated = await rotate_local_kek(node.ctx, ADMIN)
        assert rotated.old_kek_id == str(row.id) and rotated.rewrapped_keys == 1
        assert (await node.crypto.decrypt(APP, Item(LOCAL, sku))).data == b"sku 42"

    hsm_admin.set(local_key, b"\x02", encrypt=False, decrypt=False)  # the officer disables it
    async with running(settings) as node:
        assert (await node.crypto.decrypt(APP, Item(EXTERNAL, salary))).data == b"salary"
        with pytest.raises(KeyUnavailable) as err:
            await node.crypto.decrypt(APP, Item(LOCAL, sku))
        assert err.value.reason is Reason.LOCAL_KEK_UNAVAILABLE


async def test_the_local_kek_under_a_kmip_key_serves_and_rotates_across_restarts(
    pg_url: str, kmip_server: KmipServer, kmip_admin: KmipAdmin, kmip_key: str, tmp_path: Path
) -> None:
    protector = kmip_admin.create()
    settings = node_settings(
        pg_url,
        tmp_path,
        secret="z" * 40,
        kms_provider="kmip",
        kmip_host=kmip_server.host,
        kmip_port=kmip_server.port,
        kmip_cert_file=kmip_server.pki.client_cert,
        kmip_key_file=kmip_server.pki.client_key,
        kmip_ca_file=kmip_server.pki.ca,
        local_kek_provider="kmip",
        local_kek_key_id=protector,
    )
    async with running(settings) as node:
        await open_module(node.ctx, KmsProvider.KMIP, kmip_key, EXTERNAL.module or "")
        await create_module(node.ctx, ADMIN, ModuleInput("global.catalog", external_wrap=False))
        grant = PolicyInput(TargetType.ROLE, "svc", frozenset(Operation), AccessResult.TRACK)
        await create_policy(node.ctx, ADMIN, "global.catalog", grant)
        sku = (await node.crypto.encrypt(APP, Item(LOCAL, b"sku 7"))).data
        assert sku is not None
        async with node.ctx.uow() as uow:
            row = await uow.local_keks.get()
        assert row is not None and row.encryption_context[PROTECTOR_KEY] == protector
        kmip_admin.revoke(kmip_key)  # the customer revokes the external key: not this module
        assert (await node.crypto.decrypt(APP, Item(LOCAL, sku))).data == b"sku 7"
    async with running(settings) as node:  # a restart unwraps it through the KMIP server
        assert (await node.crypto.decrypt(APP, Item(LOCAL, sku))).data == b"sku 7"
        assert (await rotate_local_kek(node.ctx, ADMIN)).rewrapped_keys == 1
    async with running(settings) as node:
        assert (await node.crypto.decrypt(APP, Item(LOCAL, sku))).data == b"sku 7"


def test_a_protector_without_its_key_or_its_provider_does_not_start(tmp_path: Path) -> None:
    base = {"database_url": "sqlite+aiosqlite:///x.db", "data_dir": tmp_path}
    with pytest.raises(StartupError, match="EKMS_LOCAL_KEK_KEY_ID"):
        local_kek_ref(Settings(**base, local_kek_provider="pkcs11"))
    with pytest.raises(StartupError, match="not set up"):
        local_kek_ref(Settings(**base, local_kek_provider="kmip", local_kek_key_id="uid-1"))
    assert local_kek_ref(Settings(**base)).provider is KmsProvider.LOCAL
