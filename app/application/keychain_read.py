"""The rows a key chain snapshot is built from, read so that the KEKs and the key versions
that name them agree.

The unit of work reads at READ COMMITTED, so each statement sees what was committed when it
started: a KEK rotation (the external one or the local one) that commits between reading the
KEK rows and reading the key versions would give a snapshot whose versions name a KEK it does
not hold (``KEY_VERSION_DESTROYED`` on decrypt). So the KEK rows are read again after the key
versions and the read is repeated until both reads name the same KEKs: a rotation always
writes a fresh id, so equal ids mean no rotation committed in between.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from app.application.lookups import load_keys, load_wraps
from app.application.ports import UnitOfWork, UnitOfWorkFactory
from app.application.xks.directory import XksDirectory
from app.domain.alerts import Alert
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig
from app.domain.external_keys import ExternalKey
from app.domain.local_kek import LocalInstanceKey
from app.domain.module import CryptoModule, EncryptedFieldConfig, ModuleKey
from app.domain.policy import ModuleAccessPolicy

_ATTEMPTS = 5  # each retry means a rotation committed during the read: rare, and bounded


@dataclass(frozen=True, slots=True)
class ChainRows:
    config: ExternalKmsConfig | None
    ekek: ExternalInstanceKey | None
    local_row: LocalInstanceKey | None
    keys: list[ExternalKey]
    wraps: dict[uuid.UUID, ExternalInstanceKey]
    modules: Sequence[CryptoModule]
    keys_versions: Sequence[ModuleKey]
    policies: Sequence[ModuleAccessPolicy]
    fields: Sequence[EncryptedFieldConfig]
    alerts: Sequence[Alert]
    xks: XksDirectory


async def _kek_ids(uow: UnitOfWork) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    ekek, local = await uow.instance_keys.get_active(), await uow.local_keks.get()
    return (ekek.id if ekek else None), (local.id if local else None)


async def read_chain(uow_factory: UnitOfWorkFactory) -> ChainRows:
    """Every row of a snapshot, in one transaction, the KEKs agreeing with the versions."""
    async with uow_factory() as uow:
        for _ in range(_ATTEMPTS):
            config = await uow.config.get()
            ekek = await uow.instance_keys.get_active()
            local_row = await uow.local_keks.get()
            keys_versions = await uow.keys.list_all()
            ids = (ekek.id if ekek else None), (local_row.id if local_row else None)
            if await _kek_ids(uow) == ids:
                break
        keys = await load_keys(uow, config) if config is not None else []
        wraps = await load_wraps(uow, keys, ekek)
        return ChainRows(
            config=config,
            ekek=ekek,
            local_row=local_row,
            keys=keys,
            wraps=wraps,
            modules=await uow.modules.list(),
            keys_versions=keys_versions,
            policies=await uow.policies.list_all(),
            fields=await uow.fields.list(),
            alerts=await uow.status.open_alerts(),
            xks=XksDirectory.of(await uow.xks_stores.list(), await uow.xks_keys.list()),
        )
