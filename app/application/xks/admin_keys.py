"""Admin use cases of the external key store's keys: AES-256 keys sealed in ekms's chain
(``backend`` ``ekms``) or resident in the PKCS#11 HSM (``pkcs11``: generated in the token,
non-extractable; the row holds only the object's label, sealed under the KEK). Every change is
audited in its transaction and then published, so every replica's snapshot reloads.

An HSM key's object is generated before its row is committed (and destroyed again if the
commit fails), and destroyed before its row is deleted, so no committed row names an object
that was never made, and a failed delete changes nothing and can be retried.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import structlog

from app.application.context import AppContext
from app.application.erasure import erase_dead_rows
from app.application.ports import KeyStore, UnitOfWork, XksHsm
from app.application.xks.admin_common import load_store, serving_kek
from app.domain.errors import EkmsError, InvalidInput, NotFound
from app.domain.values import Caller
from app.domain.xks import (
    XksKey,
    XksKeyBackend,
    XksKeyStatus,
    XksKeyUsage,
    hsm_label,
    sealed_binding,
    valid_external_key_id,
)
from app.domain.xks_crypto import XKS_KEY_SIZE

MAX_RULES = 32
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class KeyInput:
    store_id: uuid.UUID
    external_key_id: str | None = None
    usage: frozenset[XksKeyUsage] = frozenset(XksKeyUsage)
    allowed_principals: tuple[str, ...] = ()
    allowed_operations: tuple[str, ...] = ()
    backend: XksKeyBackend = XksKeyBackend.EKMS


@dataclass(frozen=True, slots=True)
class KeyChanges:
    enabled: bool | None = None
    usage: frozenset[XksKeyUsage] | None = None
    allowed_principals: tuple[str, ...] | None = None
    allowed_operations: tuple[str, ...] | None = None


async def _key(uow: UnitOfWork, key_id: uuid.UUID) -> XksKey:
    key = await uow.xks_keys.get(key_id)
    if key is None:
        raise NotFound(f"XKS key {key_id} does not exist")
    return key


def _check_rules(principals: Sequence[str], operations: Sequence[str]) -> None:
    for name, values in (("allowed_principals", principals), ("allowed_operations", operations)):
        if len(values) > MAX_RULES or any(not v or len(v) > 2048 for v in values):
            raise InvalidInput(f"{name}: at most {MAX_RULES} non-empty strings", field=name)


def _hsm(ctx: AppContext) -> XksHsm:
    if ctx.xks_hsm is None:
        raise InvalidInput(
            "backend pkcs11: no PKCS#11 token is set up in this process "
            "(EKMS_PKCS11_TOKEN_LABEL, EKMS_PKCS11_PIN)",
            field="backend",
        )
    return ctx.xks_hsm


async def list_keys(ctx: AppContext) -> Sequence[XksKey]:
    async with ctx.uow() as uow:
        return await uow.xks_keys.list()


async def get_key(ctx: AppContext, key_id: uuid.UUID) -> XksKey:
    async with ctx.uow() as uow:
        return await _key(uow, key_id)


async def create_key(ctx: AppContext, caller: Caller, data: KeyInput) -> XksKey:
    """A new AES-256 key: generated here and sealed under the KEK, or generated in the HSM."""
    key_id = ctx.rng.uuid()
    external_key_id = data.external_key_id or str(key_id)
    if not valid_external_key_id(external_key_id):
        raise InvalidInput("external_key_id: 1-128 of A-Z, a-z, 0-9, '.', '-', '_'")
    if not data.usage:
        raise InvalidInput("usage: ENCRYPT, DECRYPT or both", field="usage")
    _check_rules(data.allowed_principals, data.allowed_operations)
    hsm = _hsm(ctx) if data.backend is XksKeyBackend.PKCS11 else None
    kek = await serving_kek(ctx)
    key = XksKey(
        id=key_id,
        store_id=data.store_id,
        external_key_id=external_key_id,
        usage=data.usage,
        status=XksKeyStatus.ENABLED,
        sealed_key=b"",
        kek_id=kek.id,
        allowed_principals=data.allowed_principals,
        allowed_operations=data.allowed_operations,
        created_at=ctx.clock.now(),
        backend=data.backend,
    )
    async with ctx.uow() as uow:
        store = await load_store(uow, data.store_id)
        if hsm is None:
            raw = ctx.rng.token_bytes(XKS_KEY_SIZE)
        else:
            await hsm.generate(hsm_label(key_id))
            raw = hsm_label(key_id).encode("ascii")
        key.sealed_key = kek.seal(raw, sealed_binding(key), ctx.rng.token_bytes(12))
        del raw
        try:
            await uow.xks_keys.add(key)
            target = f"{store.name}/{external_key_id}"
            details: dict[str, object] = {"backend": key.backend.value}
            event = ctx.event(caller, "xks.key.create", target=target, details=details)
            await ctx.commit_audited(uow, event)
        except BaseException:
            if hsm is not None:  # no row names it: the object goes too
                with contextlib.suppress(EkmsError):
                    await hsm.destroy(hsm_label(key_id))
            raise
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


async def destroy_hsm_objects(ctx: AppContext, keys: Iterable[XksKey]) -> None:
    """The HSM objects of ``keys``' ``pkcs11`` keys destroyed (before their rows go)."""
    hsm_keys = [k for k in keys if k.backend is XksKeyBackend.PKCS11]
    if not hsm_keys:
        return
    hsm = _hsm(ctx)
    for key in hsm_keys:
        if not await hsm.destroy(hsm_label(key.id)):
            log.warning("xks_hsm_object_missing", external_key_id=key.external_key_id)


async def delete_key(ctx: AppContext, caller: Caller, key_id: uuid.UUID) -> None:
    async with ctx.uow() as uow:
        key = await _key(uow, key_id)
    await destroy_hsm_objects(ctx, [key])
    async with ctx.uow() as uow:
        await uow.xks_keys.delete(key_id)
        details: dict[str, object] = {"backend": key.backend.value}
        event = ctx.event(caller, "xks.key.delete", target=key.external_key_id, details=details)
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("xks")
    await erase_dead_rows(ctx, KeyStore.XKS_KEYS)  # a deleted key's material is gone for good
