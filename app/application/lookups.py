"""Lookups every use case shares: the configuration, its external keys and their EKEKs, a
module by name, an external key's reference and the KMS context the KEK is wrapped under. Use
cases import these from here, never from each other."""

from __future__ import annotations

import uuid

from app.application.ports import ExternalKeyDescription, ExternalKeyRef, UnitOfWork
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig, copy_observed
from app.domain.errors import KeyUnavailable, NotFound, Reason
from app.domain.external_keys import ExternalKey
from app.domain.module import CryptoModule
from app.domain.values import ExternalKeyStatus


async def require_config(uow: UnitOfWork) -> ExternalKmsConfig:
    """The instance's configuration, or ``NotFound(NOT_CONFIGURED)``."""
    config = await uow.config.get()
    if config is None:
        raise NotFound("ekms is not configured", reason=Reason.NOT_CONFIGURED)
    return config


async def require_module(uow: UnitOfWork, name: str) -> CryptoModule:
    """The module named ``name``, or ``NotFound(MODULE_NOT_FOUND)``."""
    module = await uow.modules.get_by_name(name)
    if module is None:
        raise NotFound(f"module {name!r} does not exist", reason=Reason.MODULE_NOT_FOUND)
    return module


def external_ref(config: ExternalKmsConfig) -> ExternalKeyRef:
    """The provider's reference to the configuration's external key."""
    return ExternalKeyRef(config.provider, config.key_id, location=config.region)


def key_ref(key: ExternalKey) -> ExternalKeyRef:
    """The provider's reference to one external key of the configuration."""
    return ExternalKeyRef(key.provider, key.key_id, location=key.region)


async def load_keys(uow: UnitOfWork, config: ExternalKmsConfig) -> list[ExternalKey]:
    """Every external key, the first first. The first key's state is the configuration's (the
    previous schema head writes it there); a configuration whose key has no row yet (made by
    that head) has its first key under the configuration's id."""
    keys = list(await uow.external_keys.list())
    if not keys:
        return [ExternalKey.first_of(config, config.id, 0)]
    first = keys[0]
    first.provider, first.key_id, first.region = config.provider, config.key_id, config.region
    copy_observed(first, config)
    return keys


async def load_wraps(
    uow: UnitOfWork, keys: list[ExternalKey], kek_row: ExternalInstanceKey | None
) -> dict[uuid.UUID, ExternalInstanceKey]:
    """Each key's EKEK of the current KEK, by key id. The KEK's own row is the first key's."""
    if kek_row is None:
        return {}
    wraps = {keys[0].id: kek_row}
    for row in await uow.instance_keys.list():
        if row.kek_id == kek_row.id and row.external_key_id is not None:
            wraps[row.external_key_id] = row
    return wraps


async def save_key_state(
    uow: UnitOfWork, config: ExternalKmsConfig, key: ExternalKey, *, first: bool
) -> None:
    """Store what was seen of ``key``; the first key's state goes to the configuration too."""
    if first:
        copy_observed(config, key)
        await uow.config.save(config)
    if any(row.id == key.id for row in await uow.external_keys.list()):
        await uow.external_keys.save(key)
    else:
        await uow.external_keys.add(key)


def require_enabled(description: ExternalKeyDescription) -> None:
    """``KeyUnavailable`` naming the true state unless the external key is enabled."""
    if description.status is not ExternalKeyStatus.ENABLED:
        reason = {
            ExternalKeyStatus.DISABLED: Reason.EXTERNAL_KEY_DISABLED,
            ExternalKeyStatus.PENDING_DELETION: Reason.EXTERNAL_KEY_PENDING_DELETION,
            ExternalKeyStatus.DELETED: Reason.EXTERNAL_KEY_DELETED,
        }.get(description.status, Reason.EXTERNAL_KEY_UNAVAILABLE)
        why = f": {description.reason}" if description.reason else ""
        raise KeyUnavailable(
            f"the external key is {description.status.value}{why}; {_WAY_OUT[reason]}",
            reason=reason,
        )


_WAY_OUT = {
    Reason.EXTERNAL_KEY_DISABLED: "enable it to use it",
    Reason.EXTERNAL_KEY_PENDING_DELETION: "cancel its deletion and enable it to use it",
    Reason.EXTERNAL_KEY_DELETED: "a deleted key never comes back: use another key",
    Reason.EXTERNAL_KEY_UNAVAILABLE: "it must be enabled and reachable",
}


def kek_context(instance_id: str, kek_id: uuid.UUID) -> dict[str, str]:
    """The KMS EncryptionContext the KEK is wrapped under: names the instance and purpose."""
    return {"ekms:instance": instance_id, "ekms:purpose": "kek", "ekms:kek-id": str(kek_id)}
