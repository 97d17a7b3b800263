"""Use cases for the KEK: rotate it (new KEK, DEKs rewrapped) and rewrap the EKEK (same KEK,
new external key material)."""

from __future__ import annotations

from dataclasses import dataclass

from app.application.audit_checkpoints import reseal_signing_keys
from app.application.context import AppContext
from app.application.erasure import erase_dead_rows
from app.application.kek_mint import mint_kek
from app.application.lookups import external_ref, key_ref, load_keys, load_wraps, require_config
from app.application.ports import KeyStore
from app.application.xks.reseal import reseal_under
from app.domain.errors import KeyUnavailable, Reason
from app.domain.external_keys import ExternalKey
from app.domain.values import Caller


@dataclass(frozen=True, slots=True)
class KekRotationResult:
    """What a KEK rotation did: the old and new KEK, how many DEKs it rewrapped, and how many
    sealed XKS values (keys and SigV4 secrets) it resealed."""

    old_kek_id: str
    new_kek_id: str
    new_fingerprint: str
    rewrapped_keys: int
    resealed_xks: int = 0


async def rotate_kek(ctx: AppContext, caller: Caller) -> KekRotationResult:
    """A new KEK, wrapped under the first external key and each other one not stopped; every
    DEK that still has material is rewrapped under it in one transaction (but those under the
    local KEK: their modules have ``external_wrap=false``).

    Field ciphertexts are untouched: they name the DEK version, and the DEKs do not change.
    The same transaction deletes the previous EKEK (and any older one left by an earlier
    version of ekms) once no DEK names it, so the old KEK can no longer be unwrapped from this
    database; then the superseded row versions are erased (``erase_dead_rows``). A crash
    before the commit leaves the old chain whole, after it the new one.
    """
    snap = await ctx.chain.snapshot()
    old_kek = ctx.chain.check_serving(snap, None)
    async with ctx.uow() as uow:
        config = await require_config(uow)
        first, *rest = await load_keys(uow, config)
    others = [k for k in rest if not k.stopped]  # a stopped key cannot wrap: it keeps none
    kms = ctx.kms.connect(external_ref(config))
    also = [(k.id, ctx.kms.connect(key_ref(k))) for k in others]
    new_ekek, new_kek, more_ekeks = await mint_kek(ctx, kms, also)
    new_ekek.external_key_id = first.id
    new_id = new_kek.id
    count = 0
    async with ctx.uow() as uow:
        current = await uow.instance_keys.get_active()
        if current is None or current.id != old_kek.id:
            raise KeyUnavailable(
                "the key encryption key changed meanwhile; retry", reason=Reason.CONCURRENT_UPDATE
            )
        current.active = False
        await uow.instance_keys.save(current)
        await uow.instance_keys.add(new_ekek)
        for more in more_ekeks:
            await uow.instance_keys.add(more)
        for key in await uow.keys.list_all():
            if key.wrapped_dek is None or key.local_wrap:
                continue  # no material, or under the local KEK (external_wrap=false)
            dek = old_kek.unwrap(key.wrapped_dek, key.module_id, key.version)
            key.wrapped_dek = new_kek.wrap(dek, key.module_id, key.version, ctx.rng.token_bytes(12))
            del dek
            key.kek_id = new_id
            await uow.keys.save(key)
            count += 1
        await reseal_signing_keys(ctx, uow, old_kek, new_kek)
        resealed_xks = await reseal_under(uow, old_kek, new_kek, ctx.rng.token_bytes)
        # Every DEK with material now names the new KEK: no row references the others.
        retired = [k.id for k in await uow.instance_keys.list() if k.wraps != new_id]
        for kek_id in retired:
            await uow.instance_keys.delete(kek_id)
        await uow.audit.append(
            [
                ctx.event(
                    caller,
                    "kek.rotate",
                    details={
                        "old_kek_id": str(old_kek.id),
                        "new_kek_id": str(new_id),
                        "new_fingerprint": new_kek.fingerprint,
                        "rewrapped_keys": count,
                        "resealed_xks": resealed_xks,
                        "deleted_kek_ids": [str(k) for k in retired],
                    },
                )
            ]
        )
        await uow.commit()
    ctx.chain.remember_kek(new_kek)
    await ctx.changes.publish("kek")
    await erase_dead_rows(ctx, KeyStore.INSTANCE_KEYS, KeyStore.MODULE_KEYS)
    return KekRotationResult(str(old_kek.id), str(new_id), new_kek.fingerprint, count, resealed_xks)


@dataclass(frozen=True, slots=True)
class EkekRewrapResult:
    """What an EKEK rewrap after the external key's rotation did."""

    kek_id: str
    fingerprint: str
    old_marker: str
    new_marker: str


async def rewrap_ekek(
    ctx: AppContext, caller: Caller, key: ExternalKey | None = None
) -> EkekRewrapResult:
    """Wrap the KEK again under one external key's current material (``kms.rewrap``): the
    first key's (the KEK's own EKEK row) unless ``key`` names another; no other EKEK changes.

    The KEK and every DEK stay the same, so no cache is touched and no call is interrupted.
    """
    async with ctx.uow() as uow:
        config = await require_config(uow)
        ekek = await uow.instance_keys.get_active()
        if key is not None and ekek is not None:
            ekek = (await load_wraps(uow, await load_keys(uow, config), ekek)).get(key.id)
    if ekek is None:
        raise KeyUnavailable("ekms is not configured", reason=Reason.NOT_CONFIGURED)
    kms = ctx.kms.connect(external_ref(config) if key is None else key_ref(key))
    rotation = await kms.rotation_state()
    rewrapped = await kms.rewrap(ekek.wrapped_kek, ekek.encryption_context)
    old_marker = ekek.rotation_marker
    async with ctx.uow() as uow:
        ekek.rewrapped(rewrapped.ciphertext, rewrapped.key_name, rotation.marker, ctx.clock.now())
        await uow.instance_keys.save(ekek)
        await uow.audit.append(
            [
                ctx.event(
                    caller,
                    "ekek.rewrap",
                    details={
                        "kek_id": str(ekek.wraps),
                        "external_key": str(ekek.external_key_id),
                        "fingerprint": ekek.fingerprint,
                        "old_marker": old_marker,
                        "new_marker": rotation.marker,
                    },
                )
            ]
        )
        await uow.commit()
    await ctx.changes.publish("ekek")
    return EkekRewrapResult(str(ekek.wraps), ekek.fingerprint, old_marker, rotation.marker)
