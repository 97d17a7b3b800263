"""The external key store's use cases on fakes (in-memory database, fake KMS, fake clock): the
admin rules, the SigV4 date window on the clock port, the audit of each call with its
request metadata, and the revoked chain answering ``InvalidStateException``."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest

from app.application.ports import KeyStore, SignedRequest
from app.application.sync import sync_external_key
from app.application.xks import admin
from app.application.xks.proxy import XksCall, XksProxy
from app.domain.errors import AlreadyExists, Conflict, InvalidInput, NotFound
from app.domain.values import Caller, ExternalKeyStatus
from app.domain.xks import XksErrorName, XksOperation, XksRejected
from app.infra.sigv4 import BotocoreSigV4Verifier
from tests.e2e.xks_support import metadata, signed_headers
from tests.unit.conftest import World

ADMIN = Caller("admin", frozenset({"ekms.admin", "ekms.key_manager"}))
REGION = "eu-west-1"


@pytest.fixture
async def store(world: World) -> tuple[Any, admin.IssuedCredential]:
    await world.configure()
    made = await admin.create_store(world.ctx, ADMIN, admin.StoreInput("s1", "/s1", REGION))
    await admin.create_key(world.ctx, ADMIN, admin.KeyInput(made[0].id, "k1"))
    return made


def call(world: World, issued: admin.IssuedCredential, body: dict[str, Any], **at: Any) -> XksCall:
    path = "/s1/kms/xks/v1/keys/k1/encrypt"
    content = json.dumps(body).encode()
    when = world.clock.now() + timedelta(**at)
    headers = signed_headers(
        "https://h" + path, content, issued.access_key_id, issued.secret_access_key, REGION, at=when
    )
    lower = {k.lower(): v for k, v in headers.items()} | {"host": "h"}
    return XksCall("/s1", XksOperation.ENCRYPT, "k1", SignedRequest("POST", path, lower, content))


def encrypt_body() -> dict[str, Any]:
    plaintext = base64.b64encode(b"k" * 32).decode()
    return {"requestMetadata": metadata(), "plaintext": plaintext, "encryptionAlgorithm": "AES_GCM"}


async def test_store_input_rules(world: World) -> None:
    await world.configure()
    for bad in (
        admin.StoreInput("Bad Name", "/a", REGION),
        admin.StoreInput("ok", "/a/", REGION),
        admin.StoreInput("ok", "/a", "mars-1"),
    ):
        with pytest.raises(InvalidInput):
            await admin.create_store(world.ctx, ADMIN, bad)
    await admin.create_store(world.ctx, ADMIN, admin.StoreInput("one", "/a", REGION))
    with pytest.raises(AlreadyExists):
        await admin.create_store(world.ctx, ADMIN, admin.StoreInput("two", "/a", REGION))


async def test_credentials_overlap_two_at_most_one_at_least(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    made, issued = store
    rotated, second = await admin.add_store_credential(world.ctx, ADMIN, made.id)
    assert [c.access_key_id for c in rotated.credentials] == [
        issued.access_key_id,
        second.access_key_id,
    ]
    with pytest.raises(Conflict):
        await admin.add_store_credential(world.ctx, ADMIN, made.id)
    with pytest.raises(NotFound):
        await admin.remove_store_credential(world.ctx, ADMIN, made.id, "B" * 24)
    await admin.remove_store_credential(world.ctx, ADMIN, made.id, issued.access_key_id)
    with pytest.raises(Conflict):
        await admin.remove_store_credential(world.ctx, ADMIN, made.id, second.access_key_id)
    assert second.secret_access_key not in repr(second)


async def test_the_signature_date_window_is_five_minutes_on_the_clock(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    proxy = XksProxy(world.ctx, BotocoreSigV4Verifier(), model="test")
    _, issued = store
    for minutes in (-4.9, 4.9):
        await proxy.handle(call(world, issued, encrypt_body(), minutes=minutes))
    for minutes in (-5.1, 5.1):
        with pytest.raises(XksRejected) as refused:
            await proxy.handle(call(world, issued, encrypt_body(), minutes=minutes))
        assert refused.value.name is XksErrorName.AUTHENTICATION_FAILED


async def test_each_call_is_audited_with_its_metadata(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    proxy = XksProxy(world.ctx, BotocoreSigV4Verifier(), model="test")
    body = encrypt_body()
    await proxy.handle(call(world, store[1], body))
    await world.ctx.audit.flush()
    async with world.ctx.uow() as uow:
        events = [e for e in uow.audit.s.audit if e.action == "xks.encrypt"]  # type: ignore[attr-defined]
    (event,) = events
    assert event.actor == body["requestMetadata"]["awsPrincipalArn"]
    assert event.target == "xks:s1/k1"
    assert event.details["kmsRequestId"] == body["requestMetadata"]["kmsRequestId"]
    assert "plaintext" not in json.dumps(event.details, default=str)


async def test_a_revoked_chain_is_invalid_state_before_any_secret_is_opened(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    proxy = XksProxy(world.ctx, BotocoreSigV4Verifier(), model="test")
    await proxy.handle(call(world, store[1], encrypt_body()))
    world.kms.status = ExternalKeyStatus.DISABLED
    await sync_external_key(world.ctx)
    with pytest.raises(XksRejected) as refused:
        await proxy.handle(call(world, store[1], encrypt_body()))
    assert refused.value.name is XksErrorName.INVALID_STATE
    snap = world.ctx.chain.cached
    assert snap is None or all(
        not v.secrets and not v.materials for v in snap.xks.by_prefix.values()
    )


async def test_deleting_key_material_asks_the_database_to_forget_it(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    made, issued = store
    (key,) = await admin.list_keys(world.ctx)
    await admin.delete_key(world.ctx, ADMIN, key.id)
    assert world.db.erased[-1] == (KeyStore.XKS_KEYS,)
    await admin.add_store_credential(world.ctx, ADMIN, made.id)
    await admin.remove_store_credential(world.ctx, ADMIN, made.id, issued.access_key_id)
    assert world.db.erased[-1] == (KeyStore.XKS_STORES,)
    await admin.delete_store(world.ctx, ADMIN, made.id)
    assert world.db.erased[-1] == (KeyStore.XKS_KEYS, KeyStore.XKS_STORES)
    assert await admin.list_stores(world.ctx) == []


async def test_kek_rotation_counts_resealed_xks_keys_and_secrets_apart(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    from app.application.kek import rotate_kek

    await admin.add_store_credential(world.ctx, ADMIN, store[0].id)  # two secrets
    await admin.create_key(world.ctx, ADMIN, admin.KeyInput(store[0].id, "k2"))  # two keys
    result = await rotate_kek(world.ctx, ADMIN)
    assert result.resealed_xks == 4 and result.rewrapped_keys == 0
    keys = await admin.list_keys(world.ctx)
    assert len(keys) == 2 and all(str(k.kek_id) == result.new_kek_id for k in keys)


async def test_a_store_region_change_is_checked_audited_and_changes_only_the_region(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    before = await admin.get_store(world.ctx, store[0].id)
    with pytest.raises(InvalidInput):
        await admin.change_store_region(world.ctx, ADMIN, store[0].id, "mars")
    with pytest.raises(NotFound):
        await admin.change_store_region(world.ctx, ADMIN, world.ctx.rng.uuid(), "us-west-2")
    after = await admin.change_store_region(world.ctx, ADMIN, store[0].id, "us-west-2")
    assert after.region == "us-west-2"
    assert (after.name, after.uri_prefix, after.credentials) == (
        before.name,
        before.uri_prefix,
        before.credentials,
    )
    events = [e for e in world.db.committed.audit if e.action == "xks.store.region"]
    assert [(e.details["old_region"], e.details["region"]) for e in events] == [
        (REGION, "us-west-2")
    ]


async def test_a_pkcs11_key_without_a_token_is_refused_before_any_write(
    world: World, store: tuple[Any, admin.IssuedCredential]
) -> None:
    from app.domain.xks import XksKeyBackend

    data = admin.KeyInput(store[0].id, "hsm", backend=XksKeyBackend.PKCS11)
    with pytest.raises(InvalidInput) as refused:
        await admin.create_key(world.ctx, ADMIN, data)
    assert refused.value.field == "backend"
    assert [k.external_key_id for k in await admin.list_keys(world.ctx)] == ["k1"]
