"""Making a new KEK: generate it, wrap it under the external key, describe the EKEK record."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from app.application.context import AppContext
from app.application.lookups import kek_context
from app.application.ports import KeyManagementService, UnitOfWork
from app.domain.ekms_config import ExternalInstanceKey
from app.domain.keys import DEK_SIZE, KEK_SIZE, KeyEncryptionKey
from app.domain.module import CryptoModule, ModuleKey
from app.domain.values import KeyState


async def mint_kek(
    ctx: AppContext,
    kms: KeyManagementService,
    also: Sequence[tuple[uuid.UUID, KeyManagementService]] = (),
) -> tuple[ExternalInstanceKey, KeyEncryptionKey, list[ExternalInstanceKey]]:
    """A fresh KEK in memory and its EKEK record (wrapped form, marker, context, fingerprint)
    under the first key; and one more EKEK for each other external key in ``also``."""
    kek_id = ctx.rng.uuid()
    raw = ctx.rng.token_bytes(KEK_SIZE)
    kek = KeyEncryptionKey(kek_id, raw)
    try:
        ekek = await _wrapped(ctx, kms, raw, kek, row_id=kek_id, external_key_id=None)
        more = [await wrap_for_key(ctx, other, raw, kek, key_id) for key_id, other in also]
    finally:
        del raw
    return ekek, kek, more


async def wrap_for_key(
    ctx: AppContext,
    kms: KeyManagementService,
    key_to_wrap: bytes,
    kek: KeyEncryptionKey,
    external_key_id: uuid.UUID,
) -> ExternalInstanceKey:
    """The KEK's EKEK under one more external key (a row naming the KEK in ``kek_id``)."""
    return await _wrapped(
        ctx, kms, key_to_wrap, kek, row_id=ctx.rng.uuid(), external_key_id=external_key_id
    )


async def _wrapped(
    ctx: AppContext,
    kms: KeyManagementService,
    key_to_wrap: bytes,
    kek: KeyEncryptionKey,
    *,
    row_id: uuid.UUID,
    external_key_id: uuid.UUID | None,
) -> ExternalInstanceKey:
    """An EKEK row: the KEK wrapped under ``kms`` with the key's current rotation marker. The
    KEK's own row (``row_id`` is the KEK id) is the active one; another key's names the KEK."""
    rotation = await kms.rotation_state()
    context = kek_context(ctx.chain.instance_id, kek.id)
    wrapped = await kms.wrap(key_to_wrap, context)
    own = row_id == kek.id
    return ExternalInstanceKey(
        id=row_id,
        wrapped_kek=wrapped.ciphertext,
        kms_key_arn=wrapped.key_name,
        rotation_marker=rotation.marker,
        encryption_context=context,
        fingerprint=kek.fingerprint,
        created_at=ctx.clock.now(),
        active=own,
        external_key_id=external_key_id,
        kek_id=None if own else kek.id,
    )


def new_module_key(
    ctx: AppContext, kek: KeyEncryptionKey, module: CryptoModule, version: int
) -> ModuleKey:
    """A fresh Active DEK version of ``module``, wrapped under ``kek`` (the local KEK when the
    module has ``external_wrap=false``)."""
    raw = ctx.rng.token_bytes(DEK_SIZE[module.algorithm])
    wrapped = kek.wrap(raw, module.id, version, ctx.rng.token_bytes(12))
    del raw
    now = ctx.clock.now()
    return ModuleKey(
        module_id=module.id,
        version=version,
        wrapped_dek=wrapped,
        kek_id=kek.id,
        state=KeyState.ACTIVE,
        created_at=now,
        activated_at=now,
        state_changed_at=now,
        local_wrap=not module.external_wrap,
    )


async def fresh_versions(ctx: AppContext, uow: UnitOfWork, kek: KeyEncryptionKey) -> list[str]:
    """A fresh Active version under a new KEK for each module left without one (its versions
    were lost when the previous configuration ended); the names of those modules."""
    renewed: list[str] = []
    for module in await uow.modules.list():
        keys = await uow.keys.list_for_module(module.id)
        if not module.external_wrap or not keys or any(k.state is KeyState.ACTIVE for k in keys):
            continue
        if all(k.lost_at is None for k in keys):
            continue  # never lost: its versions were retired by hand, not by the configuration
        await uow.keys.add(new_module_key(ctx, kek, module, max(k.version for k in keys) + 1))
        renewed.append(module.name)
    return renewed
