"""SQL adapters for the persistence ports in ``app.application.ports``.

Each repository works on the unit of work's ``AsyncConnection``. Common behaviour:

- ``save()`` is optimistic: it updates only if the stored ``revision`` still equals the
  entity's, then bumps both; otherwise ``Conflict(CONCURRENT_UPDATE)``.
- ``add()`` maps a unique violation to the domain error the port documents.
- Connection failures surface as ``ServiceUnavailable(DATABASE_UNAVAILABLE)``.

Order matters where the database guards "at most one active": deactivate and save the old
EKEK or module key version before adding the new active one (a partial unique index cannot be
deferred to commit time).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select, true

from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig
from app.domain.errors import AlreadyExists, Reason
from app.domain.module import CryptoModule, EncryptedFieldConfig
from app.domain.policy import ModuleAccessPolicy
from app.infra.db import mappers as m
from app.infra.db import policy_rows
from app.infra.db import tables as t
from app.infra.db._base import SqlRepository, concurrent_update
from app.infra.db.audit import SqlaAuditRepository
from app.infra.db.errors import ConstraintViolation
from app.infra.db.keys import SqlaModuleKeyRepository

__all__ = [
    "SqlaAuditRepository",
    "SqlaConfigRepository",
    "SqlaFieldConfigRepository",
    "SqlaInstanceKeyRepository",
    "SqlaModuleKeyRepository",
    "SqlaModuleRepository",
    "SqlaPolicyRepository",
]


def _already_configured() -> AlreadyExists:
    return AlreadyExists(
        "this instance already has its EKMS configuration", reason=Reason.ALREADY_CONFIGURED
    )


class SqlaConfigRepository(SqlRepository):
    """The one ``ExternalKmsConfig`` row (``ekms_config.singleton`` keeps it to one)."""

    async def get(self) -> ExternalKmsConfig | None:
        row = await self._one(select(t.ekms_config).where(t.ekms_config.c.singleton == 1))
        return None if row is None else m.config_from_row(row)

    async def add(self, config: ExternalKmsConfig) -> None:
        values = m.config_values(config) | {"singleton": 1, "revision": config.revision}
        await self._insert(t.ekms_config, values, _already_configured)

    async def save(self, config: ExternalKmsConfig) -> None:
        key = [t.ekms_config.c.id == config.id]
        values = m.config_values(config)
        await self._update_versioned(
            t.ekms_config, key, values, config, "the EKMS configuration", _already_configured
        )

    async def delete(self, config: ExternalKmsConfig) -> None:
        stmt = delete(t.ekms_config).where(
            t.ekms_config.c.id == config.id, t.ekms_config.c.revision == config.revision
        )
        if (await self._execute(stmt)).rowcount != 1:
            raise concurrent_update("the EKMS configuration")


class SqlaInstanceKeyRepository(SqlRepository):
    """EKEK records; at most one is active."""

    _t = t.external_instance_keys

    async def get_active(self) -> ExternalInstanceKey | None:
        row = await self._one(select(self._t).where(self._t.c.active == true()))
        return None if row is None else m.instance_key_from_row(row)

    async def get(self, kek_id: uuid.UUID) -> ExternalInstanceKey | None:
        row = await self._one(select(self._t).where(self._t.c.id == kek_id))
        return None if row is None else m.instance_key_from_row(row)

    async def list(self) -> Sequence[ExternalInstanceKey]:
        rows = await self._rows(select(self._t).order_by(self._t.c.created_at, self._t.c.id))
        return [m.instance_key_from_row(row) for row in rows]

    async def add(self, key: ExternalInstanceKey) -> None:
        values = m.instance_key_values(key) | {"revision": key.revision}
        await self._insert(self._t, values, lambda: concurrent_update("the instance key"))

    async def save(self, key: ExternalInstanceKey) -> None:
        values = m.instance_key_values(key)
        await self._update_versioned(
            self._t, [self._t.c.id == key.id], values, key, "the instance key"
        )

    async def delete(self, kek_id: uuid.UUID) -> None:
        """Idempotent. A DEK that still names the EKEK (one added concurrently, wrapped under
        the KEK being retired) makes it ``Conflict(CONCURRENT_UPDATE)``."""
        try:
            await self._execute(delete(self._t).where(self._t.c.id == kek_id))
        except ConstraintViolation:
            raise concurrent_update("the instance key") from None


class SqlaModuleRepository(SqlRepository):
    _t = t.crypto_modules

    async def get(self, module_id: uuid.UUID) -> CryptoModule | None:
        row = await self._one(select(self._t).where(self._t.c.id == module_id))
        return None if row is None else m.module_from_row(row)

    async def get_by_name(self, name: str) -> CryptoModule | None:
        row = await self._one(select(self._t).where(self._t.c.name == name))
        return None if row is None else m.module_from_row(row)

    async def list(self) -> Sequence[CryptoModule]:
        rows = await self._rows(select(self._t).order_by(self._t.c.name))
        return [m.module_from_row(row) for row in rows]

    async def add(self, module: CryptoModule) -> None:
        values = m.module_values(module) | {"revision": module.revision}
        await self._insert(self._t, values, lambda: _module_exists(module.name))

    async def save(self, module: CryptoModule) -> None:
        await self._update_versioned(
            self._t,
            [self._t.c.id == module.id],
            m.module_values(module),
            module,
            f"module {module.name!r}",
            lambda: _module_exists(module.name),
        )


def _module_exists(name: str) -> AlreadyExists:
    return AlreadyExists(f"a module named {name!r} already exists")


class SqlaFieldConfigRepository(SqlRepository):
    _t = t.encrypted_field_configs

    async def get(self, config_id: uuid.UUID) -> EncryptedFieldConfig | None:
        row = await self._one(select(self._t).where(self._t.c.id == config_id))
        return None if row is None else m.field_config_from_row(row)

    async def find(self, table: str, column: str) -> EncryptedFieldConfig | None:
        stmt = select(self._t).where(self._t.c.table_name == table, self._t.c.column_name == column)
        row = await self._one(stmt)
        return None if row is None else m.field_config_from_row(row)

    async def list(self) -> Sequence[EncryptedFieldConfig]:
        stmt = select(self._t).order_by(self._t.c.table_name, self._t.c.column_name)
        return [m.field_config_from_row(row) for row in await self._rows(stmt)]

    async def add(self, config: EncryptedFieldConfig) -> None:
        values = m.field_config_values(config) | {"revision": config.revision}
        await self._insert(self._t, values, lambda: _field_exists(config))

    async def save(self, config: EncryptedFieldConfig) -> None:
        await self._update_versioned(
            self._t,
            [self._t.c.id == config.id],
            m.field_config_values(config),
            config,
            f"the field configuration of {config.table}.{config.column}",
            lambda: _field_exists(config),
        )

    async def delete(self, config_id: uuid.UUID) -> None:
        """Idempotent: deleting what is already gone does nothing."""
        await self._execute(delete(self._t).where(self._t.c.id == config_id))


def _field_exists(config: EncryptedFieldConfig) -> AlreadyExists:
    return AlreadyExists(f"{config.table}.{config.column} already has a field configuration")


class SqlaPolicyRepository(SqlRepository):
    _t = t.module_access_policies

    async def get(self, policy_id: uuid.UUID) -> ModuleAccessPolicy | None:
        row = await self._one(select(self._t).where(self._t.c.id == policy_id))
        return None if row is None else policy_rows.policy_from_row(row)

    async def list_for_module(self, module_id: uuid.UUID) -> Sequence[ModuleAccessPolicy]:
        stmt = (
            select(self._t)
            .where(self._t.c.module_id == module_id)
            .order_by(self._t.c.created_at, self._t.c.id)
        )
        return [policy_rows.policy_from_row(row) for row in await self._rows(stmt)]

    async def list_all(self) -> Sequence[ModuleAccessPolicy]:
        stmt = select(self._t).order_by(self._t.c.module_id, self._t.c.created_at, self._t.c.id)
        return [policy_rows.policy_from_row(row) for row in await self._rows(stmt)]

    async def add(self, policy: ModuleAccessPolicy) -> None:
        values = policy_rows.policy_values(policy) | {"revision": policy.revision}
        await self._insert(
            self._t, values, lambda: AlreadyExists(f"access policy {policy.id} already exists")
        )

    async def save(self, policy: ModuleAccessPolicy) -> None:
        where = [self._t.c.id == policy.id]
        values = policy_rows.policy_values(policy)
        await self._update_versioned(self._t, where, values, policy, f"access policy {policy.id}")

    async def delete(self, policy_id: uuid.UUID) -> None:
        """Idempotent: deleting what is already gone does nothing."""
        await self._execute(delete(self._t).where(self._t.c.id == policy_id))
