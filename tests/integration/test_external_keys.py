"""Several external keys wrap one KEK (issue 13, part 2), against Postgres and moto's KMS server:
two AWS keys in two regions, under ``all`` and ``any``; add, remove, the last key; a restart
that unwraps with the second key while the first key's region is down (``tests/fixtures/
kms_gate``, in front of moto, answers that key's calls with a KMS internal error)."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from app.application.config_probe import probe_ekms_config
from app.application.configuration import ConfigInput, configure_ekms, get_status
from app.application.crypto import Item
from app.application.external_keys import (
    ExternalKeyInput,
    add_external_key,
    list_external_keys,
    remove_external_key,
)
from app.application.sync import sync_external_key
from app.application.targets import Target
from app.bootstrap import Container, build_rest_app, running
from app.domain.errors import KeyUnavailable, Reason
from app.domain.values import (
    ExternalKeyStatus,
    KmsProvider,
    RevocationPolicy,
)
from app.infra.settings import Settings
from app.infra.tokens import mint_dev_token
from tests.chain_support import ADMIN, APP, aws_settings, grant_module
from tests.fixtures.kms import AWS_TEST_CREDENTIALS, AWS_TEST_REGION
from tests.fixtures.kms_gate import KmsGate
from tests.fixtures.pkcs11 import HsmAdmin, SoftHsmToken

TARGET = Target(module="global.multi")
SECOND_REGION = "us-east-1"
SECRET = "z" * 40
ALL, DISABLED = RevocationPolicy.ALL, ExternalKeyStatus.DISABLED


def _settings(pg_url: str, url: str, tmp_path: Path, **extra: Any) -> Settings:
    return aws_settings(pg_url, url, tmp_path, secret=SECRET, **extra)


@pytest.fixture(scope="module")
def second_admin(moto_server: str) -> Any:
    """The customer's KMS client in the second region."""
    session = boto3.session.Session(region_name=SECOND_REGION, **AWS_TEST_CREDENTIALS)
    return session.client("kms", endpoint_url=moto_server)


@pytest.fixture
def keys(kms_admin: Any, second_admin: Any) -> tuple[str, str]:
    """A fresh key in each region: (first, second)."""
    first = kms_admin.create_key()["KeyMetadata"]["KeyId"]
    second = second_admin.create_key()["KeyMetadata"]["KeyId"]
    return str(first), str(second)


async def _chain(container: Container, keys: tuple[str, str], policy: RevocationPolicy) -> bytes:
    """Configure on the first key under ``policy``, add the second, encrypt one value."""
    ctx = container.ctx
    config = ConfigInput(KmsProvider.AWS, keys[0], AWS_TEST_REGION, revocation_policy=policy)
    await configure_ekms(ctx, ADMIN, config)
    await grant_module(ctx, TARGET.module or "")
    await add_external_key(ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, keys[1], SECOND_REGION))
    blob = (await container.crypto.encrypt(APP, Item(TARGET, b"payroll"))).data
    assert blob is not None
    return blob


async def _decrypts(container: Container, blob: bytes) -> bool:
    try:
        return (await container.crypto.decrypt(APP, Item(TARGET, blob))).data == b"payroll"
    except KeyUnavailable:
        return False


async def _refusal(container: Container, blob: bytes) -> Reason:
    with pytest.raises(KeyUnavailable) as err:
        await container.crypto.decrypt(APP, Item(TARGET, blob))
    return err.value.reason


@pytest.fixture
async def node(
    pg_url: str, aws_env: str, moto_server: str, tmp_path: Path
) -> AsyncIterator[Container]:
    async with running(_settings(pg_url, moto_server, tmp_path)) as container:
        yield container


async def test_under_all_one_disabled_key_keeps_serving_and_both_disabled_stop(
    node: Container, keys: tuple[str, str], kms_admin: Any, second_admin: Any
) -> None:
    blob = await _chain(node, keys, RevocationPolicy.ALL)

    kms_admin.disable_key(KeyId=keys[0])
    report = await sync_external_key(node.ctx)

    assert [k.status for k in report.keys] == [
        ExternalKeyStatus.DISABLED,
        ExternalKeyStatus.ENABLED,
    ]
    assert await _decrypts(node, blob)
    status = await get_status(node.ctx)
    assert status.serving and status.external_key_status is ExternalKeyStatus.DISABLED
    assert [k.external_key_status for k, _ in status.keys] == [
        ExternalKeyStatus.DISABLED,
        ExternalKeyStatus.ENABLED,
    ]

    second_admin.disable_key(KeyId=keys[1])
    await sync_external_key(node.ctx)

    assert await _refusal(node, blob) is Reason.EXTERNAL_KEY_DISABLED
    assert not (await get_status(node.ctx)).serving
    kms_admin.enable_key(KeyId=keys[0])
    await sync_external_key(node.ctx)
    assert await _decrypts(node, blob)


async def test_under_any_one_disabled_key_stops_the_chain(
    node: Container, keys: tuple[str, str], second_admin: Any
) -> None:
    blob = await _chain(node, keys, RevocationPolicy.ANY)

    second_admin.disable_key(KeyId=keys[1])
    report = await sync_external_key(node.ctx)

    assert report.keys[1].status is ExternalKeyStatus.DISABLED
    assert report.status is ExternalKeyStatus.ENABLED  # the first key is fine
    assert await _refusal(node, blob) is Reason.EXTERNAL_KEY_DISABLED
    alerts = (await get_status(node.ctx)).open_alerts
    assert len(alerts) == 1 and "disabled" in alerts[0].message

    second_admin.enable_key(KeyId=keys[1])
    await sync_external_key(node.ctx)
    assert await _decrypts(node, blob)
    assert (await get_status(node.ctx)).open_alerts == ()


async def test_a_rotation_of_one_key_rewraps_only_its_ekek(
    node: Container, keys: tuple[str, str], second_admin: Any
) -> None:
    blob = await _chain(node, keys, RevocationPolicy.ANY)
    before = {v.key.id: v.ekek for v in await list_external_keys(node.ctx)}

    second_admin.rotate_key_on_demand(KeyId=keys[1])
    report = await sync_external_key(node.ctx)

    assert [k.rewrapped for k in report.keys] == [False, True]
    after = {v.key.id: v.ekek for v in await list_external_keys(node.ctx)}
    first_id, second_id = list(before)
    assert after[first_id] == before[first_id]
    old, new = before[second_id], after[second_id]
    assert old is not None and new is not None
    assert new.rotation_marker != old.rotation_marker and new.fingerprint == old.fingerprint
    assert await _decrypts(node, blob)


async def test_removing_the_first_key_re_roots_the_chain_and_a_restart_decrypts(
    pg_url: str, node: Container, keys: tuple[str, str], moto_server: str, tmp_path: Path
) -> None:
    blob = await _chain(node, keys, RevocationPolicy.ANY)
    first, second = await list_external_keys(node.ctx)
    assert (first.first, second.first) == (True, False)

    await remove_external_key(node.ctx, ADMIN, first.key.id)

    (only,) = await list_external_keys(node.ctx)
    assert (only.key.id, only.first, only.key.key_id) == (second.key.id, True, keys[1])
    status = await get_status(node.ctx)
    assert (status.key_id, status.serving) == (keys[1], True)
    assert await _decrypts(node, blob)
    async with running(_settings(pg_url, moto_server, tmp_path / "again")) as again:
        assert await _decrypts(again, blob)  # the KEK unwrapped under the second key alone


async def test_adding_a_key_that_fails_the_probe_writes_nothing(
    node: Container, keys: tuple[str, str], second_admin: Any
) -> None:
    ctx = node.ctx
    await configure_ekms(ctx, ADMIN, ConfigInput(KmsProvider.AWS, keys[0], AWS_TEST_REGION))
    second_admin.disable_key(KeyId=keys[1])
    async with ctx.uow() as uow:
        rows_before = len(await uow.instance_keys.list())

    with pytest.raises(KeyUnavailable) as disabled:
        await add_external_key(
            ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, keys[1], SECOND_REGION)
        )
    with pytest.raises(KeyUnavailable):  # no such key in the first region
        await add_external_key(
            ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, keys[1], AWS_TEST_REGION)
        )

    assert disabled.value.reason is Reason.EXTERNAL_KEY_DISABLED
    assert len(await list_external_keys(ctx)) == 1
    async with ctx.uow() as uow:
        assert len(await uow.instance_keys.list()) == rows_before
        assert len(await uow.external_keys.list()) == 1


async def test_rest_lists_adds_removes_and_refuses_the_last_key(
    node: Container, keys: tuple[str, str]
) -> None:
    token = mint_dev_token(SECRET, sub="alice", roles=["ekms.admin"], clock=node.ctx.clock)
    auth = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=build_rest_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://ekms.test") as client:
        put = await client.put(
            "/api/v1/ekms/config",
            json={
                "provider": "aws",
                "key_id": keys[0],
                "region": AWS_TEST_REGION,
                "revocation_policy": "all",
            },
            headers=auth,
        )
        added = await client.post(
            "/api/v1/ekms/external-keys",
            json={"provider": "aws", "key_id": keys[1], "region": SECOND_REGION},
            headers=auth,
        )
        listed = await client.get("/api/v1/ekms/external-keys", headers=auth)
        ready = await client.get("/readyz")
        probe = await client.post("/api/v1/ekms/config/test", headers=auth)
        config = await client.get("/api/v1/ekms/config", headers=auth)
        first_id = listed.json()["items"][0]["id"]
        removed = await client.delete(f"/api/v1/ekms/external-keys/{first_id}", headers=auth)
        (last,) = (await client.get("/api/v1/ekms/external-keys", headers=auth)).json()["items"]
        refused = await client.delete(f"/api/v1/ekms/external-keys/{last['id']}", headers=auth)
        unknown = await client.delete(f"/api/v1/ekms/external-keys/{first_id}", headers=auth)
        status = await client.get("/api/v1/ekms/status", headers=auth)

    assert put.status_code == 201, put.text
    assert added.status_code == 201, added.text
    assert added.headers["Location"].endswith(added.json()["id"])
    items = listed.json()["items"]
    assert [(i["key_id"], i["state"], i["first"]) for i in items] == [
        (keys[0], "enabled", True),
        (keys[1], "enabled", False),
    ]
    assert all(i["rotation_marker"] and i["last_sync_at"] for i in items)
    checks = ready.json()["checks"]
    tested = probe.json()
    assert tested["ok"] is True and [k["id"] for k in tested["keys"]] == [i["id"] for i in items]
    assert all(k["ok"] and k["status"] == "enabled" for k in tested["keys"])
    assert {checks.get(f"external_key:{i['id']}") for i in items} == {"enabled"}
    assert config.json()["revocation_policy"] == "all"
    assert config.json()["key_id"] == keys[0]  # the flat fields name the first key
    assert removed.status_code == 204
    assert last["key_id"] == keys[1] and last["first"]
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["reason"] == "LAST_EXTERNAL_KEY"
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "EXTERNAL_KEY_NOT_FOUND")
    body = status.json()
    assert body["external_key"]["key_id"] == keys[1]
    assert [k["key_id"] for k in body["external_keys"]] == [keys[1]]


async def test_a_restart_unwraps_with_the_second_key_while_the_first_is_unavailable(
    pg_url: str,
    aws_env: str,
    kms_gate: KmsGate,
    keys: tuple[str, str],
    tmp_path: Path,
) -> None:
    async with running(_settings(pg_url, kms_gate.url, tmp_path)) as first_node:
        blob = await _chain(first_node, keys, RevocationPolicy.ALL)

    kms_gate.silence_key(keys[0])  # the first key's region is down
    async with running(_settings(pg_url, kms_gate.url, tmp_path / "again")) as restarted:
        assert await _decrypts(restarted, blob)
        assert (await get_status(restarted.ctx)).serving
        probe = await probe_ekms_config(restarted.ctx, ADMIN)
    assert not probe.ok and [k.ok for k in probe.keys] == [False, True]
    assert probe.keys[1].status is ExternalKeyStatus.ENABLED


async def test_an_aws_key_and_an_hsm_key_wrap_one_kek(
    pg_url: str,
    aws_env: str,
    kms_gate: KmsGate,
    kms_admin: Any,
    pkcs11_token: SoftHsmToken,
    pkcs11_key: str,
    hsm_admin: HsmAdmin,
    tmp_path: Path,
) -> None:
    """AWS (moto, behind the gate) first, a SoftHSM2 key second, under ``all``: the HSM
    officer disabling the HSM key leaves the chain serving; with the AWS region down at a
    restart the HSM alone unwraps the KEK, and once the HSM key is disabled too the KEK stays
    in memory for the silent AWS key's grace period; both keys disabled stop the chain."""
    aws_key = str(kms_admin.create_key()["KeyMetadata"]["KeyId"])
    hsm = {
        "pkcs11_library": pkcs11_token.library,
        "pkcs11_token_label": pkcs11_token.label,
        "pkcs11_pin": pkcs11_token.pin,
    }
    async with running(_settings(pg_url, kms_gate.url, tmp_path, **hsm)) as node:
        ctx = node.ctx
        config = ConfigInput(KmsProvider.AWS, aws_key, AWS_TEST_REGION, revocation_policy=ALL)
        await configure_ekms(ctx, ADMIN, config)
        await grant_module(ctx, TARGET.module or "")
        await add_external_key(ctx, ADMIN, ExternalKeyInput(KmsProvider.PKCS11, pkcs11_key))
        blob = (await node.crypto.encrypt(APP, Item(TARGET, b"payroll"))).data
        assert blob is not None

        hsm_admin.set(pkcs11_key, encrypt=False, decrypt=False)
        report = await sync_external_key(ctx)
        assert [k.status for k in report.keys] == [ExternalKeyStatus.ENABLED, DISABLED]
        assert await _decrypts(node, blob)
        hsm_admin.set(pkcs11_key, encrypt=True, decrypt=True)
        await sync_external_key(ctx)

    kms_gate.silence_key(aws_key)
    async with running(_settings(pg_url, kms_gate.url, tmp_path / "again", **hsm)) as node:
        assert await _decrypts(node, blob)  # through the HSM alone
        hsm_admin.set(pkcs11_key, encrypt=False, decrypt=False)
        report = await sync_external_key(node.ctx)
        assert [k.status for k in report.keys] == [ExternalKeyStatus.UNAVAILABLE, DISABLED]
        # The AWS key is only silent: the KEK stays in memory for its grace period.
        assert await _decrypts(node, blob)
        kms_gate.allow_all()
        kms_admin.disable_key(KeyId=aws_key)
        await sync_external_key(node.ctx)
        assert await _refusal(node, blob) is Reason.EXTERNAL_KEY_DISABLED  # every key stopped


async def test_the_local_default_re_roots_to_aws_and_a_restart_decrypts_without_the_local_key(
    pg_url: str, aws_env: str, moto_server: str, kms_key: str, tmp_path: Path
) -> None:
    """Re-rooting: the embedded default (the local root key) adds an AWS key and removes the
    local one; after a restart on AWS alone, with no local root key anywhere, the old
    ciphertext decrypts (the KEK, its DEKs and the ciphertext stayed)."""
    local_root = base64.b64encode(os.urandom(32)).decode()
    local = _settings(pg_url, moto_server, tmp_path, local_root_key=local_root)
    async with running(local.model_copy(update={"kms_provider": "local"})) as node:
        ctx = node.ctx
        await grant_module(ctx, TARGET.module or "")  # the default configured itself
        blob = (await node.crypto.encrypt(APP, Item(TARGET, b"payroll"))).data
        assert blob is not None
        await add_external_key(
            ctx, ADMIN, ExternalKeyInput(KmsProvider.AWS, kms_key, AWS_TEST_REGION)
        )
        local_key, _ = await list_external_keys(ctx)
        assert local_key.key.provider is KmsProvider.LOCAL
        await remove_external_key(ctx, ADMIN, local_key.key.id)
        assert await _decrypts(node, blob)

    async with running(_settings(pg_url, moto_server, tmp_path / "aws-only")) as node:
        (only,) = await list_external_keys(node.ctx)
        assert (only.key.provider, only.key.key_id, only.first) == (KmsProvider.AWS, kms_key, True)
        assert (await get_status(node.ctx)).provider is KmsProvider.AWS
        assert await _decrypts(node, blob)
