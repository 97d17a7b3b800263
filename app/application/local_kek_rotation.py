"""Rotating the local KEK: a new one (under the protector configured now, so a rotation also
moves it to a new ``EKMS_LOCAL_KEK_PROVIDER``), every DEK of the modules with
``external_wrap=false`` rewrapped under it, and the old one overwritten, in one transaction.

The same discipline as the external KEK's rotation (``app/application/kek``): a crash (kill -9)
before the commit leaves the old local KEK and every DEK under it, after it the new one and
every DEK under that; nothing in between is ever stored. The DEKs themselves do not change, so
no ciphertext is touched and decrypts carry on. The old row is overwritten in place (the table
holds one), and its superseded row version erased (``erase_dead_rows``), so the old local KEK
can no longer be unwrapped from this database.

A transaction that writes a DEK under the local KEK (a key rotation, a module moved in or out)
holds the row ``FOR SHARE``; the rotation's overwrite waits for it and then rewraps what it
wrote, or it waits for the rotation and then finds the KEK changed (``CONCURRENT_UPDATE``).
"""

from __future__ import annotations

from app.application.context import AppContext
from app.application.erasure import erase_dead_rows
from app.application.kek import KekRotationResult
from app.application.local_kek import mint_local_kek
from app.application.ports import KeyStore
from app.domain.errors import Conflict, Reason
from app.domain.values import Caller

__all__ = ["rotate_local_kek"]


def _changed() -> Conflict:
    return Conflict("the local KEK changed meanwhile; retry", reason=Reason.CONCURRENT_UPDATE)


async def rotate_local_kek(ctx: AppContext, caller: Caller) -> KekRotationResult:
    """A new local KEK; every DEK with material under the old one rewrapped under it.

    ``KeyUnavailable(LOCAL_KEK_UNAVAILABLE)`` (409) when there is no local KEK yet (no module
    ever had ``external_wrap=false``) or its protector cannot unwrap it; ``InvalidInput`` when
    this process has no protector for it."""
    old = ctx.chain.local_kek(await ctx.chain.snapshot())
    now = ctx.clock.now()
    row, new = await mint_local_kek(ctx.kms, ctx.rng, ctx.chain.instance_id, now, ctx.local_kek_ref)
    count = 0
    async with ctx.uow() as uow:
        await uow.local_keks.replace(old.id, row)  # locks it: DEK writers wait, or we wait
        for key in await uow.keys.list_all():
            if key.wrapped_dek is None or not key.local_wrap:
                continue  # no material, or under the external chain's KEK
            if key.kek_id != old.id:
                raise _changed()
            dek = old.unwrap(key.wrapped_dek, key.module_id, key.version)
            key.wrapped_dek = new.wrap(dek, key.module_id, key.version, ctx.rng.token_bytes(12))
            del dek
            key.kek_id = new.id
            await uow.keys.save(key)
            count += 1
        details: dict[str, object] = {
            "old_kek_id": str(old.id),
            "new_kek_id": str(new.id),
            "new_fingerprint": new.fingerprint,
            "rewrapped_keys": count,
            "protector": ctx.local_kek_ref.provider.value,
        }
        await uow.audit.append([ctx.event(caller, "local_kek.rotate", details=details)])
        await uow.commit()
    ctx.chain.remember_kek(new, local=True)
    await ctx.changes.publish("kek")
    await erase_dead_rows(ctx, KeyStore.LOCAL_KEKS, KeyStore.MODULE_KEYS)
    return KekRotationResult(str(old.id), str(new.id), new.fingerprint, count)
