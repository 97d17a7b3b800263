"""The local KEK's two moves that do not need the application context: making one (a fresh KEK
wrapped under its protector: the local root key, or ``EKMS_LOCAL_KEK_PROVIDER``'s key) and
unwrapping the stored one, by the protector its row names (``KeyChain`` on each load without
it cached). ``module_wrap`` creates it on first need; ``app/domain/local_kek`` says what it is."""

from __future__ import annotations

from datetime import datetime

from app.application.ports import (
    ExternalKeyRef,
    KeyManagementService,
    KmsConnector,
    RandomSource,
)
from app.domain.errors import EkmsError, InvalidInput, KeyUnavailable, Reason
from app.domain.keys import KEK_SIZE, KeyEncryptionKey
from app.domain.local_kek import (
    LOCAL_KEK_KEY_ID,
    PROTECTOR,
    PROTECTOR_KEY,
    LocalInstanceKey,
    local_kek_context,
)
from app.domain.values import KmsProvider

LOCAL_KEK_REF = ExternalKeyRef(KmsProvider.LOCAL, LOCAL_KEK_KEY_ID)

__all__ = ["LOCAL_KEK_REF", "local_root", "mint_local_kek", "protector_of", "unwrap_local_kek"]


def local_root(kms: KmsConnector, ref: ExternalKeyRef = LOCAL_KEK_REF) -> KeyManagementService:
    """The local KEK's protector (by default the local root key), or
    ``InvalidInput(external_wrap)`` when this process has none."""
    try:
        return kms.connect(ref)
    except InvalidInput:
        if ref != LOCAL_KEK_REF:
            raise InvalidInput(
                f"external_wrap=false needs the local KEK's protector in this process: the "
                f"{ref.provider.value} provider is not set up (EKMS_LOCAL_KEK_PROVIDER)",
                field="external_wrap",
            ) from None
        raise InvalidInput(
            "external_wrap=false needs the local root key in this process: set "
            "EKMS_LOCAL_ROOT_KEY or EKMS_LOCAL_ROOT_KEY_FILE (the same key on every replica)",
            field="external_wrap",
        ) from None


def protector_of(row: LocalInstanceKey) -> ExternalKeyRef:
    """The key the stored local KEK was wrapped under (its context names it)."""
    provider = row.encryption_context.get(PROTECTOR)
    if provider is None:
        return LOCAL_KEK_REF
    return ExternalKeyRef(KmsProvider(provider), row.encryption_context[PROTECTOR_KEY])


async def mint_local_kek(
    kms: KmsConnector,
    rng: RandomSource,
    instance_id: str,
    now: datetime,
    ref: ExternalKeyRef = LOCAL_KEK_REF,
) -> tuple[LocalInstanceKey, KeyEncryptionKey]:
    """A fresh KEK in memory and its row, wrapped under ``ref`` (the local root key unless
    the operator chose another protector)."""
    root = local_root(kms, ref)
    kek_id = rng.uuid()
    raw = rng.token_bytes(KEK_SIZE)
    protector = None if ref == LOCAL_KEK_REF else (ref.provider.value, ref.key_id)
    try:
        kek = KeyEncryptionKey(kek_id, raw)
        context = local_kek_context(instance_id, kek_id, protector)
        wrapped = await root.wrap(raw, context)
    finally:
        del raw
    row = LocalInstanceKey(
        id=kek_id,
        wrapped_kek=wrapped.ciphertext,
        key_name=wrapped.key_name,
        encryption_context=context,
        fingerprint=kek.fingerprint,
        created_at=now,
    )
    return row, kek


async def unwrap_local_kek(
    kms: KmsConnector, row: LocalInstanceKey
) -> tuple[KeyEncryptionKey | None, EkmsError | None]:
    """The stored local KEK, or why it cannot be had (``LOCAL_KEK_UNAVAILABLE``)."""
    try:
        raw = await local_root(kms, protector_of(row)).unwrap(
            row.wrapped_kek, row.encryption_context
        )
    except EkmsError as exc:
        return None, KeyUnavailable(
            "the local KEK cannot be unwrapped by its protector "
            f"({exc.reason.value}): modules with external_wrap=false cannot serve",
            reason=Reason.LOCAL_KEK_UNAVAILABLE,
        )
    kek = KeyEncryptionKey(row.id, raw)
    del raw
    if kek.fingerprint != row.fingerprint:
        return None, KeyUnavailable(
            "the unwrapped local KEK does not match its fingerprint: is this the root key "
            "it was created under?",
            reason=Reason.LOCAL_KEK_UNAVAILABLE,
        )
    return kek, None
