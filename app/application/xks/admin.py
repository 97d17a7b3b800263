"""Admin use cases of the external key store: stores (with their SigV4 credentials and the
rotation overlap) and their AES-256 keys. Every change is audited in its transaction and then
published, so every replica's snapshot (which the proxy serves from) reloads.

Secrets are generated here and shown once: the SigV4 secret in the answer to the call that
made it, never again (it is stored sealed under the KEK).
"""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from app.application.context import AppContext
from app.application.erasure import erase_dead_rows
from app.application.ports import KeyStore, UnitOfWork
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.keys import KeyEncryptionKey
from app.domain.values import Caller
from app.domain.xks import (
    MAX_CREDENTIALS,
    XksCredential,
    XksKey,
    XksKeyStatus,
    XksKeyUsage,
    XksStore,
    key_binding,
    secret_binding,
    valid_access_key_id,
    valid_external_key_id,
    valid_prefix,
    valid_region,
    valid_store_name,
)
from app.domain.xks_crypto import XKS_KEY_SIZE

MAX_RULES = 32


@dataclass(frozen=True, slots=True)
class StoreInput:
    name: str
    uri_prefix: str
    region: str


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A new SigV4 credential: the only moment its secret is in clear outside the proxy."""

    access_key_id: str
    secret_access_key: str = dataclasses.field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyInput:
    store_id: uuid.UUID
    external_key_id: str | None = None
    usage: frozenset[XksKeyUsage] = frozenset(XksKeyUsage)
    allowed_principals: tuple[str, ...] = ()
    allowed_operations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyChanges:
    enabled: bool | None = None
    usage: frozenset[XksKeyUsage] | None = None
    allowed_principals: tuple[str, ...] | None = None
    allowed_operations: tuple[str, ...] | None = None


async def _kek(ctx: AppContext) -> KeyEncryptionKey:
    return ctx.chain.check_serving(await ctx.chain.snapshot(), None)


def _credential(
    ctx: AppContext, kek: KeyEncryptionKey, store_id: uuid.UUID
) -> tuple[XksCredential, IssuedCredential]:
    # 15 random bytes in base32: 24 characters of A-Z and 2-7, as the spec requires.
    access_key_id = base64.b32encode(ctx.rng.token_bytes(15)).decode("ascii")
    secret = base64.b64encode(ctx.rng.token_bytes(32)).decode("ascii")  # 256 bits
    sealed = kek.seal(
        secret.encode("ascii"), secret_binding(store_id, access_key_id), ctx.rng.token_bytes(12)
    )
    credential = XksCredential(access_key_id, sealed, kek.id, ctx.clock.now())
    return credential, IssuedCredential(access_key_id, secret)


async def _store(uow: UnitOfWork, store_id: uuid.UUID) -> XksStore:
    store = await uow.xks_stores.get(store_id)
    if store is None:
        raise NotFound(f"XKS store {store_id} does not exist")
    return store


async def _key(uow: UnitOfWork, key_id: uuid.UUID) -> XksKey:
    key = await uow.xks_keys.get(key_id)
    if key is None:
        raise NotFound(f"XKS key {key_id} does not exist")
    return key


async def list_stores(ctx: AppContext) -> Sequence[XksStore]:
    async with ctx.uow() as uow:
        return await uow.xks_stores.list()


async def get_store(ctx: AppContext, store_id: uuid.UUID) -> XksStore:
    async with ctx.uow() as uow:
        return await _store(uow, store_id)


async def create_store(
    ctx: AppContext, caller: Caller, data: StoreInput
) -> tuple[XksStore, IssuedCredential]:
    if not valid_store_name(data.name):
        raise InvalidInput("name: 1-63 of a-z, 0-9, '-', '_'", field="name")
    if not valid_prefix(data.uri_prefix):
        raise InvalidInput(
            "uri_prefix: '' or '/'-separated parts of A-Z, a-z, 0-9, '-', '_' "
            "(at most 116 characters, without /kms/xks/v1)",
            field="uri_prefix",
        )
    if not valid_region(data.region):
        raise InvalidInput("region: an AWS region such as eu-west-1", field="region")
    kek = await _kek(ctx)
    store_id = ctx.rng.uuid()
    credential, issued = _credential(ctx, kek, store_id)
    store = XksStore(
        store_id, data.name, data.uri_prefix, data.region, (credential,), ctx.clock.now()
    )
    async with ctx.uow() as uow:
        await uow.xks_stores.add(store)
        await ctx.commit_audited(uow, ctx.event(caller, "xks.store.create", target=data.name))
    await ctx.changes.publish("xks")
    return store, issued


async def add_store_credential(
    ctx: AppContext, caller: Caller, store_id: uuid.UUID
) -> tuple[XksStore, IssuedCredential]:
    """A second credential, accepted alongside the first until one is removed (rotation)."""
    kek = await _kek(ctx)
    async with ctx.uow() as uow:
        store = await _store(uow, store_id)
        if len(store.credentials) >= MAX_CREDENTIALS:
            raise Conflict("the store has two credentials: remove one first")
        credential, issued = _credential(ctx, kek, store.id)
        store.credentials = (*store.credentials, credential)
        await uow.xks_stores.save(store)
        event = ctx.event(
            caller,
            "xks.store.credential.add",
            target=store.name,
            details={"access_key_id": credential.access_key_id},
        )
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("xks")
    return store, issued


async def remove_store_credential(
    ctx: AppContext, caller: Caller, store_id: uuid.UUID, access_key_id: str
) -> XksStore:
    if not valid_access_key_id(access_key_id):
        raise InvalidInput("not an access key id", field="remove_access_key_id")
    async with ctx.uow() as uow:
        store = await _store(uow, store_id)
        kept = tuple(c for c in store.credentials if c.access_key_id != access_key_id)
        if len(kept) == len(store.credentials):
            raise NotFound("the store has no credential with that access key id")
        if not kept:
            raise Conflict("a store keeps at least one credential")
        store.credentials = kept
        await uow.xks_stores.save(store)
        event = ctx.event(
            caller,
            "xks.store.credential.remove",
            target=store.name,
            details={"access_key_id": access_key_id},
        )
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("xks")
    await erase_dead_rows(ctx, KeyStore.XKS_STORES)  # the removed secret's old row version
    return store


async def delete_store(ctx: AppContext, caller: Caller, store_id: uuid.UUID) -> None:
    """The store and every key of it (their material is gone for good)."""
    async with ctx.uow() as uow:
        store = await _store(uow, store_id)
        await uow.xks_stores.delete(store_id)
        await ctx.commit_audited(uow, ctx.event(caller, "xks.store.delete", target=store.name))
    await ctx.changes.publish("xks")
    await erase_dead_rows(ctx, KeyStore.XKS_KEYS, KeyStore.XKS_STORES)


def _check_rules(principals: Sequence[str], operations: Sequence[str]) -> None:
    for name, values in (("allowed_principals", principals), ("allowed_operations", operations)):
        if len(values) > MAX_RULES or any(not v or len(v) > 2048 for v in values):
            raise InvalidInput(f"{name}: at most {MAX_RULES} non-empty strings", field=name)


async def list_keys(ctx: AppContext) -> Sequence[XksKey]:
    async with ctx.uow() as uow:
        return await uow.xks_keys.list()


async def get_key(ctx: AppContext, key_id: uuid.UUID) -> XksKey:
    async with ctx.uow() as uow:
        return await _key(uow, key_id)


async def create_key(ctx: AppContext, caller: Caller, data: KeyInput) -> XksKey:
    """A new AES-256 key, generated here and sealed under the KEK."""
    key_id = ctx.rng.uuid()
    external_key_id = data.external_key_id or str(key_id)
    if not valid_external_key_id(external_key_id):
        raise InvalidInput("external_key_id: 1-128 of A-Z, a-z, 0-9, '.', '-', '_'")
    if not data.usage:
        raise InvalidInput("usage: ENCRYPT, DECRYPT or both", field="usage")
    _check_rules(data.allowed_principals, data.allowed_operations)
    kek = await _kek(ctx)
    raw = ctx.rng.token_bytes(XKS_KEY_SIZE)
    sealed = kek.seal(raw, key_binding(key_id), ctx.rng.token_bytes(12))
    del raw
    key = XksKey(
        id=key_id,
        store_id=data.store_id,
        external_key_id=external_key_id,
        usage=data.usage,
        status=XksKeyStatus.ENABLED,
        sealed_key=sealed,
        kek_id=kek.id,
        allowed_principals=data.allowed_principals,
        allowed_operations=data.allowed_operations,
        created_at=ctx.clock.now(),
    )
    async with ctx.uow() as uow:
        store = await _store(uow, data.store_id)
        await uow.xks_keys.add(key)
        target = f"{store.name}/{external_key_id}"
        await ctx.commit_audited(uow, ctx.event(caller, "xks.key.create", target=target))
    await ctx.changes.publish("xks")
    return key


async def update_key(
    ctx: AppContext, caller: Caller, key_id: uuid.UUID, changes: KeyChanges
) -> XksKey:
    async with ctx.uow() as uow:
        key = await _key(uow, key_id)
        if changes.enabled is not None:
            key.status = XksKeyStatus.ENABLED if changes.enabled else XksKeyStatus.DISABLED
        if changes.usage is not None:
            if not changes.usage:
                raise InvalidInput("usage: ENCRYPT, DECRYPT or both", field="usage")
            key.usage = changes.usage
        if changes.allowed_principals is not None:
            key.allowed_principals = changes.allowed_principals
        if changes.allowed_operations is not None:
            key.allowed_operations = changes.allowed_operations
        _check_rules(key.allowed_principals, key.allowed_operations)
        await uow.xks_keys.save(key)
        details: dict[str, object] = {"status": key.status.value, "usage": sorted(key.usage)}
        event = ctx.event(caller, "xks.key.update", target=key.external_key_id, details=details)
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("xks")
    return key


async def delete_key(ctx: AppContext, caller: Caller, key_id: uuid.UUID) -> None:
    async with ctx.uow() as uow:
        key = await _key(uow, key_id)
        await uow.xks_keys.delete(key_id)
        event = ctx.event(caller, "xks.key.delete", target=key.external_key_id)
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("xks")
    await erase_dead_rows(ctx, KeyStore.XKS_KEYS)  # a deleted key's material is gone for good
