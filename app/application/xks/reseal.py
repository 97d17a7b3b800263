"""KEK rotation and the external key store: every XKS key and SigV4 secret is resealed from
the old KEK to the new one in the rotation's own transaction (``app.application.kek``)."""

from __future__ import annotations

from collections.abc import Callable

from app.application.ports import UnitOfWork
from app.domain.keys import KeyEncryptionKey
from app.domain.xks import XksCredential, sealed_binding, secret_binding

NonceSource = Callable[[int], bytes]


async def reseal_under(
    uow: UnitOfWork, old: KeyEncryptionKey, new: KeyEncryptionKey, nonce: NonceSource
) -> int:
    """KEK rotation: every XKS key and SigV4 secret resealed from ``old`` to ``new`` in the
    rotation's transaction (an HSM-resident key's sealed object label too: its AES key stays
    in the token). Returns how many sealed values were resealed: keys plus secrets."""
    count = 0
    for key in await uow.xks_keys.list():
        binding = sealed_binding(key)
        raw = old.unseal(key.sealed_key, binding)
        key.sealed_key, key.kek_id = new.seal(raw, binding, nonce(12)), new.id
        del raw
        await uow.xks_keys.save(key)
        count += 1
    for store in await uow.xks_stores.list():
        resealed = []
        for c in store.credentials:
            binding = secret_binding(store.id, c.access_key_id)
            secret = old.unseal(c.sealed_secret, binding)
            sealed = new.seal(secret, binding, nonce(12))
            resealed.append(XksCredential(c.access_key_id, sealed, new.id, c.created_at))
            count += 1
        store.credentials = tuple(resealed)
        await uow.xks_stores.save(store)
    return count
