"""Making a new KEK: generate it, wrap it under the external key, describe the EKEK record."""

from __future__ import annotations

from app.application.context import AppContext
from app.application.lookups import kek_context
from app.application.ports import KeyManagementService
from app.domain.ekms_config import ExternalInstanceKey
from app.domain.keys import KEK_SIZE, KeyEncryptionKey


async def mint_kek(
    ctx: AppContext, kms: KeyManagementService
) -> tuple[ExternalInstanceKey, KeyEncryptionKey]:
    """A fresh KEK in memory and its EKEK record (wrapped form, marker, context, fingerprint)."""
    rotation = await kms.rotation_state()
    kek_id = ctx.rng.uuid()
    raw = ctx.rng.token_bytes(KEK_SIZE)
    context = kek_context(ctx.chain.instance_id, kek_id)
    wrapped = await kms.wrap(raw, context)
    kek = KeyEncryptionKey(kek_id, raw)
    del raw
    ekek = ExternalInstanceKey(
        id=kek_id,
        wrapped_kek=wrapped.ciphertext,
        kms_key_arn=wrapped.key_name,
        rotation_marker=rotation.marker,
        encryption_context=context,
        fingerprint=kek.fingerprint,
        created_at=ctx.clock.now(),
    )
    return ekek, kek
