"""Admin use cases of the external key store: stores (with their SigV4 credentials, the
rotation overlap and their region); their AES-256 keys are ``admin_keys``'s, re-exported.
Every change is audited in its transaction and then published, so every replica's snapshot
(which the proxy serves from) reloads.

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
from app.application.ports import KeyStore
from app.application.xks.admin_common import load_store, serving_kek
from app.application.xks.admin_keys import (
    KeyChanges,
    KeyInput,
    create_key,
    delete_key,
    destroy_hsm_objects,
    get_key,
    list_keys,
    update_key,
)
from app.domain.errors import Conflict, InvalidInput, NotFound
from app.domain.keys import KeyEncryptionKey
from app.domain.values import Caller
from app.domain.xks import (
    MAX_CREDENTIALS,
    XksCredential,
    XksStore,
    secret_binding,
    valid_access_key_id,
    valid_prefix,
    valid_region,
    valid_store_name,
)

__all__ = [
    "IssuedCredential",
    "KeyChanges",
    "KeyInput",
    "StoreInput",
    "add_store_credential",
    "change_store_region",
    "create_key",
    "create_store",
    "delete_key",
    "delete_store",
    "get_key",
    "get_store",
    "list_keys",
    "list_stores",
    "remove_store_credential",
    "update_key",
]


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


async def list_stores(ctx: AppContext) -> Sequence[XksStore]:
    async with ctx.uow() as uow:
        return await uow.xks_stores.list()


async def get_store(ctx: AppContext, store_id: uuid.UUID) -> XksStore:
    async with ctx.uow() as uow:
        return await load_store(uow, store_id)


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
    kek = await serving_kek(ctx)
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
    kek = await serving_kek(ctx)
    async with ctx.uow() as uow:
        store = await load_store(uow, store_id)
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
        store = await load_store(uow, store_id)
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


async def change_store_region(
    ctx: AppContext, caller: Caller, store_id: uuid.UUID, region: str
) -> XksStore:
    """The AWS region the store's requests are signed for (a store moved with its AWS key
    store); calls signed for the old region fail authentication from then on."""
    if not valid_region(region):
        raise InvalidInput("region: an AWS region such as eu-west-1", field="region")
    async with ctx.uow() as uow:
        store = await load_store(uow, store_id)
        old, store.region = store.region, region
        await uow.xks_stores.save(store)
        details: dict[str, object] = {"old_region": old, "region": region}
        event = ctx.event(caller, "xks.store.region", target=store.name, details=details)
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("xks")
    return store


async def delete_store(ctx: AppContext, caller: Caller, store_id: uuid.UUID) -> None:
    """The store and every key of it (their material is gone for good: HSM objects too)."""
    async with ctx.uow() as uow:
        store = await load_store(uow, store_id)
        keys = [k for k in await uow.xks_keys.list() if k.store_id == store_id]
    await destroy_hsm_objects(ctx, keys)
    async with ctx.uow() as uow:
        await uow.xks_stores.delete(store_id)
        await ctx.commit_audited(uow, ctx.event(caller, "xks.store.delete", target=store.name))
    await ctx.changes.publish("xks")
    await erase_dead_rows(ctx, KeyStore.XKS_KEYS, KeyStore.XKS_STORES)
