"""The dead end fixed (issue 13), over Postgres and moto's KMS through the REST API: while the
external key is not deleted, ``DELETE /ekms/config`` is refused and changes nothing; once it is
deleted (the key id no longer exists in KMS) the configuration ends, a new ``PUT`` makes a fresh
chain with a new KEK and a fresh version per module, and an old ciphertext is
``KEY_VERSION_LOST``. Every step is in the audit."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.application.ports import AuditQuery
from app.application.sync import sync_external_key
from app.bootstrap import Container, build_rest_app, running
from app.domain.values import ExternalKeyStatus
from app.infra.tokens import mint_dev_token
from tests.chain_support import aws_settings, grant_module
from tests.fixtures.kms import AWS_TEST_REGION

SECRET = "e" * 40
MODULE = "global.ended"
CONFIG = "/api/v1/ekms/config"
GONE = "00000000-0000-4000-8000-0000000000ee"  # no such key in KMS: describe reads deleted


@pytest.fixture
async def node(
    pg_url: str, aws_env: str, moto_server: str, tmp_path: Path
) -> AsyncIterator[Container]:
    settings = aws_settings(pg_url, moto_server, tmp_path, secret=SECRET)
    async with running(settings) as container:
        yield container


def _auth(node: Container, sub: str, role: str) -> dict[str, str]:
    token = mint_dev_token(SECRET, sub=sub, roles=[role], clock=node.ctx.clock)
    return {"Authorization": f"Bearer {token}"}


async def _delete_key_in_kms(node: Container) -> None:
    """The customer deleted the key: the configuration now names a key KMS does not have (moto
    only schedules deletions), and the sync reads it as deleted."""
    async with node.ctx.uow() as uow:
        config = await uow.config.get()
        assert config is not None
        config.key_id = GONE
        await uow.config.save(config)
        await uow.commit()
    assert (await sync_external_key(node.ctx)).status is ExternalKeyStatus.DELETED


async def _stored(node: Container) -> tuple[Any, ...]:
    async with node.ctx.uow() as uow:
        config = await uow.config.get()
        return (
            None if config is None else (config.id, config.revision),
            sorted(str(k.id) for k in await uow.instance_keys.list()),
            sorted((k.version, k.state.value) for k in await uow.keys.list_all()),
        )


async def test_the_config_ends_only_when_every_key_is_deleted_and_a_new_put_starts_fresh(
    node: Container, kms_admin: Any
) -> None:
    admin = _auth(node, "alice", "ekms.admin")
    app = _auth(node, "svc", "svc")
    instance = node.ctx.chain.instance_id
    first_key = kms_admin.create_key()["KeyMetadata"]["KeyId"]
    second_key = kms_admin.create_key()["KeyMetadata"]["KeyId"]
    transport = httpx.ASGITransport(app=build_rest_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://ekms.test") as client:
        put = await client.put(
            CONFIG,
            json={"provider": "aws", "key_id": first_key, "region": AWS_TEST_REGION},
            headers=admin,
        )
        assert put.status_code == 201, put.text
        await grant_module(node.ctx, MODULE)
        plaintext = base64.b64encode(b"payroll").decode()
        sealed = await client.post(
            "/api/v1/crypto/encrypt", json={"module": MODULE, "plaintext": plaintext}, headers=app
        )
        old = sealed.json()["ciphertext"]
        async with node.ctx.uow() as uow:
            old_kek = (await uow.instance_keys.get_active()).id  # type: ignore[union-attr]
        before = await _stored(node)

        enabled = await client.delete(CONFIG, params={"confirm": instance}, headers=admin)
        assert await _stored(node) == before
        kms_admin.schedule_key_deletion(KeyId=first_key, PendingWindowInDays=7)
        await sync_external_key(node.ctx)
        before = await _stored(node)
        pending = await client.delete(CONFIG, params={"confirm": instance}, headers=admin)
        assert await _stored(node) == before

        await _delete_key_in_kms(node)
        before = await _stored(node)
        missing = await client.delete(CONFIG, headers=admin)
        wrong = await client.delete(CONFIG, params={"confirm": "not-this-one"}, headers=admin)
        as_app = await client.delete(CONFIG, params={"confirm": instance}, headers=app)
        assert await _stored(node) == before

        ended = await client.delete(CONFIG, params={"confirm": instance}, headers=admin)
        gone = await client.get(CONFIG, headers=admin)
        fresh = await client.put(
            CONFIG,
            json={"provider": "aws", "key_id": second_key, "region": AWS_TEST_REGION},
            headers=admin,
        )
        lost = await client.post(
            "/api/v1/crypto/decrypt", json={"module": MODULE, "ciphertext": old}, headers=app
        )
        new = (
            await client.post(
                "/api/v1/crypto/encrypt",
                json={"module": MODULE, "plaintext": plaintext},
                headers=app,
            )
        ).json()["ciphertext"]
        opened = await client.post(
            "/api/v1/crypto/decrypt", json={"module": MODULE, "ciphertext": new}, headers=app
        )
        versions = await client.get(f"/api/v1/modules/{MODULE}/keys", headers=admin)

    for refused, state in ((enabled, "enabled"), (pending, "pending_deletion")):
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["reason"] == "EXTERNAL_KEY_NOT_DELETED"
        assert state in refused.json()["detail"]
    assert (missing.status_code, wrong.status_code, as_app.status_code) == (422, 422, 403)
    assert wrong.json()["reason"] == "INVALID_INPUT"

    assert ended.status_code == 200, ended.text
    assert ended.json() == {"lost_key_versions": 1, "external_keys": 1, "ekeks": 1}
    assert (gone.status_code, gone.json()["reason"]) == (404, "NOT_CONFIGURED")
    assert fresh.status_code == 201, fresh.text
    assert fresh.json()["key_id"] == second_key
    async with node.ctx.uow() as uow:
        kek = await uow.instance_keys.get_active()
        assert kek is not None and kek.id != old_kek
        assert len(await uow.instance_keys.list()) == 1
    assert lost.status_code == 409, lost.text
    assert lost.headers["content-type"].startswith("application/problem+json")
    assert lost.json()["reason"] == "KEY_VERSION_LOST"
    assert opened.status_code == 200 and opened.json()["plaintext"] == plaintext
    assert [(v["version"], v["state"]) for v in versions.json()] == [
        (1, "destroyed"),
        (2, "active"),
    ]

    async with node.ctx.uow() as uow:
        end = await uow.audit.query(AuditQuery(action="ekms.config.end"))
        configured = await uow.audit.query(AuditQuery(action="ekms.configure"))
    (event,) = end
    assert event.actor == "alice" and event.details["lost_key_versions"] == 1
    assert event.details["external_keys"] == [GONE]
    assert [e.details.get("fresh_key_versions") for e in configured] == [None, [MODULE]]
