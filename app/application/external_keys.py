"""Use cases for the configuration's external keys: list them, add one (the current KEK
wrapped under it, the round trip probed, nothing written unless it holds), remove one.

Removing the first key makes the next one first: the KEK's own EKEK row takes over that key's
wrap, and the configuration's flat ``provider``/``key_id``/``region`` name it (re-rooting: the
KEK, every DEK and every field ciphertext stay).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.application.context import AppContext
from app.application.erasure import erase_dead_rows
from app.application.kek_mint import wrap_for_key
from app.application.lookups import (
    key_ref,
    load_keys,
    load_wraps,
    require_config,
    require_enabled,
)
from app.application.ports import KeyStore, UnitOfWork
from app.domain.alerts import KEY_UNUSABLE, key_unusable_kind
from app.domain.audit import AuditEvent
from app.domain.ekms_config import (
    ExternalInstanceKey,
    ExternalKmsConfig,
    copy_observed,
    record_observed,
)
from app.domain.errors import (
    AlreadyExists,
    Conflict,
    KeyUnavailable,
    NotFound,
    Reason,
    ServiceUnavailable,
)
from app.domain.external_keys import ExternalKey
from app.domain.keys import KeyEncryptionKey, constant_time_equal
from app.domain.values import Caller, ExternalKeyStatus, KmsProvider


@dataclass(frozen=True, slots=True)
class ExternalKeyInput:
    """The key to add: its provider, the provider's name for it, and (AWS) its region."""

    provider: KmsProvider
    key_id: str
    region: str | None = None


@dataclass(frozen=True, slots=True)
class ExternalKeyView:
    """One external key with its EKEK of the current KEK (``None`` when it holds none)."""

    key: ExternalKey
    ekek: ExternalInstanceKey | None
    first: bool


async def list_external_keys(ctx: AppContext) -> list[ExternalKeyView]:
    """Every external key of the configuration, the first first."""
    async with ctx.uow() as uow:
        config = await require_config(uow)
        keys = await load_keys(uow, config)
        wraps = await load_wraps(uow, keys, await uow.instance_keys.get_active())
    return [ExternalKeyView(k, wraps.get(k.id), i == 0) for i, k in enumerate(keys)]


async def add_external_key(
    ctx: AppContext, caller: Caller, data: ExternalKeyInput
) -> ExternalKeyView:
    """Wrap the current KEK under one more external key; probe the round trip first."""
    snap = await ctx.chain.snapshot()
    kek = ctx.chain.check_serving(snap, None)
    async with ctx.uow() as uow:
        config = await require_config(uow)
        keys = await load_keys(uow, config)
        wraps = await load_wraps(uow, keys, await uow.instance_keys.get_active())
    if any(k.same_key(data.provider, data.key_id, data.region) for k in keys):
        raise AlreadyExists(
            "this external key already wraps the key encryption key",
            reason=Reason.EXTERNAL_KEY_EXISTS,
        )
    now = ctx.clock.now()
    key = ExternalKey(
        ctx.rng.uuid(), keys[-1].position + 1, data.provider, data.key_id, data.region, now
    )
    kms = ctx.kms.connect(key_ref(key))
    require_enabled(await kms.describe())
    raw = await _kek_bytes(ctx, tuple(keys), wraps, kek)
    try:
        ekek = await wrap_for_key(ctx, kms, raw, kek, key.id)
    finally:
        del raw
    back = KeyEncryptionKey(kek.id, await kms.unwrap(ekek.wrapped_kek, ekek.encryption_context))
    if not constant_time_equal(back.fingerprint, kek.fingerprint):
        raise KeyUnavailable(
            "the new external key did not give the key encryption key back",
            reason=Reason.EXTERNAL_KEY_UNWRAP_FAILED,
        )
    record_observed(key, ExternalKeyStatus.ENABLED, now)
    async with ctx.uow() as uow:
        if not await uow.external_keys.list():  # a configuration the previous head made
            await uow.external_keys.add(keys[0])
        await uow.external_keys.add(key)
        await uow.instance_keys.add(ekek)
        await uow.audit.append([_event(ctx, caller, "ekms.external_key.add", key)])
        await uow.commit()
    await ctx.changes.publish("config")
    return ExternalKeyView(key, ekek, False)


async def remove_external_key(ctx: AppContext, caller: Caller, key_id: uuid.UUID) -> None:
    """Remove one external key and its EKEKs; ``Conflict(LAST_EXTERNAL_KEY)`` for the last."""
    async with ctx.uow() as uow:
        config = await require_config(uow)
        keys = await load_keys(uow, config)
        kek_row = await uow.instance_keys.get_active()
        wraps = await load_wraps(uow, keys, kek_row)
        key = next((k for k in keys if k.id == key_id), None)
        if key is None:
            raise NotFound("no such external key", reason=Reason.EXTERNAL_KEY_NOT_FOUND)
        if len(keys) == 1:
            raise Conflict(
                "the last external key cannot be removed: it alone wraps the key encryption key",
                reason=Reason.LAST_EXTERNAL_KEY,
            )
        now = ctx.clock.now()
        if key is keys[0]:
            await _promote(uow, config, keys[1], wraps, kek_row, now)
        for row in await uow.instance_keys.list():
            if row.external_key_id == key.id and row.kek_id is not None:
                await uow.instance_keys.delete(row.id)
        await uow.external_keys.delete(key.id)
        await uow.status.close_alerts(key_unusable_kind(key.id), now)
        await uow.audit.append([_event(ctx, caller, "ekms.external_key.remove", key)])
        await uow.commit()
    ctx.chain.purge()  # the KEK may have come through the removed key: unwrap it afresh
    await ctx.changes.publish("purge")
    await erase_dead_rows(ctx, KeyStore.INSTANCE_KEYS)


async def _promote(
    uow: UnitOfWork,
    config: ExternalKmsConfig,
    successor: ExternalKey,
    wraps: dict[uuid.UUID, ExternalInstanceKey],
    kek_row: ExternalInstanceKey | None,
    now: datetime,
) -> None:
    """The next key becomes first: the KEK's own EKEK row takes over its wrap, and the
    configuration names it (and shows its state, where the previous schema head reads it)."""
    wrap = wraps.get(successor.id)
    if kek_row is None or wrap is None:
        raise KeyUnavailable(
            "the next external key holds no wrap of the current key encryption key",
            reason=Reason.EXTERNAL_KEY_UNAVAILABLE,
        )
    await uow.instance_keys.delete(wrap.id)
    kek_row.rewrapped(wrap.wrapped_kek, wrap.kms_key_arn, wrap.rotation_marker, now)
    kek_row.external_key_id = successor.id
    await uow.instance_keys.save(kek_row)
    config.reroot(successor.provider, successor.key_id, successor.region, now)
    copy_observed(config, successor)
    await uow.config.save(config)
    for kind in (KEY_UNUSABLE, key_unusable_kind(successor.id)):
        await uow.status.close_alerts(kind, now)


async def _kek_bytes(
    ctx: AppContext,
    keys: tuple[ExternalKey, ...],
    wraps: dict[uuid.UUID, ExternalInstanceKey],
    kek: KeyEncryptionKey,
) -> bytes:
    """The KEK's bytes, unwrapped by the first key not stopped that answers (the in-memory
    KEK keeps none, by design)."""
    failure: Exception | None = None
    for key in keys:
        wrap = wraps.get(key.id)
        if wrap is None or key.stopped:
            continue
        try:
            raw = await ctx.kms.connect(key_ref(key)).unwrap(
                wrap.wrapped_kek, wrap.encryption_context
            )
        except (KeyUnavailable, ServiceUnavailable) as exc:
            failure = exc
            continue
        if constant_time_equal(KeyEncryptionKey(kek.id, raw).fingerprint, kek.fingerprint):
            return raw
    if failure is not None:
        raise failure
    raise KeyUnavailable(
        "no external key gave the key encryption key back", reason=Reason.EXTERNAL_KEY_UNAVAILABLE
    )


def _event(ctx: AppContext, caller: Caller, action: str, key: ExternalKey) -> AuditEvent:
    return ctx.event(
        caller,
        action,
        target=key.key_id,
        details={"external_key": str(key.id), "provider": key.provider.value, "region": key.region},
    )
