"""Lookups every use case shares: the configuration, a module by name, the external key's
reference and the KMS context the KEK is wrapped under. Use cases import these from here, never
from each other."""

from __future__ import annotations

import uuid

from app.application.ports import ExternalKeyRef, UnitOfWork
from app.domain.ekms_config import ExternalKmsConfig
from app.domain.errors import NotFound, Reason
from app.domain.module import CryptoModule


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


def kek_context(instance_id: str, kek_id: uuid.UUID) -> dict[str, str]:
    """The KMS EncryptionContext the KEK is wrapped under: names the instance and purpose."""
    return {"ekms:instance": instance_id, "ekms:purpose": "kek", "ekms:kek-id": str(kek_id)}
