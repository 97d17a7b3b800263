"""Persistence: one repository per aggregate, the unit of work that holds them, its factory."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self

from app.application.ports.audit_checkpoints import AuditCheckpointRepository
from app.application.ports.xks import XksKeyRepository, XksStoreRepository
from app.domain.alerts import Alert, KeyStatusChange
from app.domain.audit import AuditEvent
from app.domain.audit_chain import ChainedEvent
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig
from app.domain.external_keys import ExternalKey
from app.domain.local_kek import LocalInstanceKey
from app.domain.module import CryptoModule, EncryptedFieldConfig, ModuleKey
from app.domain.policy import ModuleAccessPolicy


class ConfigRepository(Protocol):
    async def get(self) -> ExternalKmsConfig | None: ...

    async def add(self, config: ExternalKmsConfig) -> None: ...

    async def save(self, config: ExternalKmsConfig) -> None:
        """Update by id if ``revision`` matches, then bump it.

        Else ``Conflict(CONCURRENT_UPDATE)``."""
        ...

    async def delete(self, config: ExternalKmsConfig) -> None:
        """Remove the row if ``revision`` matches; else ``Conflict(CONCURRENT_UPDATE)``."""
        ...


class InstanceKeyRepository(Protocol):
    async def get_active(self) -> ExternalInstanceKey | None: ...

    async def get(self, kek_id: uuid.UUID) -> ExternalInstanceKey | None: ...

    async def list(self) -> Sequence[ExternalInstanceKey]: ...

    async def add(self, key: ExternalInstanceKey) -> None: ...

    async def save(self, key: ExternalInstanceKey) -> None: ...

    async def delete(self, kek_id: uuid.UUID) -> None:
        """Remove a retired EKEK (no DEK may still name it). Idempotent."""
        ...


class LocalKeyRepository(Protocol):
    """The instance's one local KEK (``app/domain/local_kek``); never deleted, only replaced
    by a rotation (``app/application/local_kek_rotation``)."""

    async def get(self, *, share: bool = False) -> LocalInstanceKey | None:
        """The row; ``share`` locks it until the transaction ends (``FOR SHARE``), so that a
        rotation waits for a transaction writing DEKs under it, and that one sees the rotation
        that committed before it."""
        ...

    async def replace(self, old_id: uuid.UUID, new: LocalInstanceKey) -> None:
        """Overwrite the row of ``old_id`` with ``new`` (locked until the transaction ends);
        ``Conflict(CONCURRENT_UPDATE)`` if the row is another one now."""
        ...

    async def add(self, key: LocalInstanceKey) -> None:
        """``Conflict(CONCURRENT_UPDATE)`` if another replica added one first."""
        ...


class ExternalKeyRepository(Protocol):
    """The configuration's external keys; the first key's state is mirrored in the config."""

    async def list(self) -> Sequence[ExternalKey]:
        """Ordered by position (the first key first)."""
        ...

    async def add(self, key: ExternalKey) -> None:
        """``Conflict(CONCURRENT_UPDATE)`` when its position is taken."""
        ...

    async def save(self, key: ExternalKey) -> None: ...

    async def delete(self, key_id: uuid.UUID) -> None:
        """Idempotent."""
        ...


class ModuleRepository(Protocol):
    async def get(self, module_id: uuid.UUID) -> CryptoModule | None: ...

    async def get_by_name(self, name: str) -> CryptoModule | None: ...

    async def list(self) -> Sequence[CryptoModule]: ...

    async def add(self, module: CryptoModule) -> None:
        """``AlreadyExists`` when the name is taken."""
        ...

    async def save(self, module: CryptoModule) -> None: ...


class ModuleKeyRepository(Protocol):
    async def list_for_module(self, module_id: uuid.UUID) -> Sequence[ModuleKey]:
        """Ordered by version."""
        ...

    async def list_all(self) -> Sequence[ModuleKey]: ...

    async def get(self, module_id: uuid.UUID, version: int) -> ModuleKey | None: ...

    async def add(self, key: ModuleKey) -> None:
        """``Conflict(CONCURRENT_UPDATE)`` when the version exists or a second ACTIVE appears."""
        ...

    async def save(self, key: ModuleKey) -> None: ...

    async def add_usage(self, counts: Mapping[tuple[uuid.UUID, int], int]) -> None:
        """Add encryption counts (without touching ``revision``)."""
        ...

    async def reserve_usage(
        self, module_id: uuid.UUID, version: int, amount: int, limit: int
    ) -> int | None:
        """Atomically raise the version's ``encryptions_reserved`` to ``usage_mark + amount``
        unless that passes ``limit``; returns the new mark, or ``None`` when refused (or no such
        version). ``revision`` is untouched."""
        ...


class FieldConfigRepository(Protocol):
    async def get(self, config_id: uuid.UUID) -> EncryptedFieldConfig | None: ...

    async def find(self, table: str, column: str) -> EncryptedFieldConfig | None: ...

    async def list(self) -> Sequence[EncryptedFieldConfig]: ...

    async def add(self, config: EncryptedFieldConfig) -> None:
        """``AlreadyExists`` when ``table.column`` is taken."""
        ...

    async def save(self, config: EncryptedFieldConfig) -> None: ...

    async def delete(self, config_id: uuid.UUID) -> None: ...


class PolicyRepository(Protocol):
    async def get(self, policy_id: uuid.UUID) -> ModuleAccessPolicy | None: ...

    async def list_for_module(self, module_id: uuid.UUID) -> Sequence[ModuleAccessPolicy]: ...

    async def list_all(self) -> Sequence[ModuleAccessPolicy]: ...

    async def add(self, policy: ModuleAccessPolicy) -> None: ...

    async def save(self, policy: ModuleAccessPolicy) -> None: ...

    async def delete(self, policy_id: uuid.UUID) -> None: ...


@dataclass(frozen=True, slots=True)
class AuditQuery:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    action: str | None = None
    module: str | None = None
    result: str | None = None
    after: tuple[datetime, uuid.UUID] | None = None  # cursor: strictly after (at, id)
    limit: int = 100
    newest_first: bool = False  # then ``after`` means strictly before (at, id)


class AuditRepository(Protocol):
    async def append(self, events: Sequence[AuditEvent]) -> None: ...

    async def query(self, query: AuditQuery) -> Sequence[AuditEvent]:
        """Ordered by (at, id), ascending unless ``newest_first``."""
        ...

    async def chain_start(self, since: datetime | None) -> ChainedEvent | None:
        """The first chained row (by ``seq``) at or after ``since``; ``None``: no chained row."""
        ...

    async def chain_page(self, after_seq: int, limit: int) -> Sequence[ChainedEvent]:
        """Chained rows with ``seq > after_seq``, ``seq`` ascending, at most ``limit``."""
        ...

    async def chain_ends(self) -> tuple[int, int] | None:
        """The recorded head's position and the last stored one, in one snapshot (or ``None``)."""
        ...

    async def has_hash(self, digest: bytes) -> bool:
        """Whether a chained row has this hash."""
        ...

    async def first_unchained(self, since: datetime) -> uuid.UUID | None:
        """A row without a chain position at or after ``since`` (the earliest), if any."""
        ...


class KeyStatusRepository(Protocol):
    """The external key's status history and the alerts about it."""

    async def record_change(self, change: KeyStatusChange) -> None: ...

    async def history(self, limit: int = 50) -> Sequence[KeyStatusChange]:
        """Newest first."""
        ...

    async def open_alert(self, alert: Alert) -> bool:
        """Open ``alert`` unless one of its kind is open already. Returns whether it opened."""
        ...

    async def close_alerts(self, kind: str, at: datetime) -> int: ...

    async def open_alerts(self) -> Sequence[Alert]: ...


class UnitOfWork(Protocol):
    """One transaction. ``async with uow:`` rolls back unless ``commit()`` was awaited."""

    config: ConfigRepository
    instance_keys: InstanceKeyRepository
    local_keks: LocalKeyRepository
    external_keys: ExternalKeyRepository
    modules: ModuleRepository
    keys: ModuleKeyRepository
    fields: FieldConfigRepository
    policies: PolicyRepository
    audit: AuditRepository
    checkpoints: AuditCheckpointRepository
    status: KeyStatusRepository
    xks_stores: XksStoreRepository
    xks_keys: XksKeyRepository

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class KeyStore(StrEnum):
    """The stores that hold wrapped key material (see ``UnitOfWorkFactory.erase_dead_rows``)."""

    MODULE_KEYS = "module_keys"
    INSTANCE_KEYS = "instance_keys"
    XKS_KEYS = "xks_keys"  # XKS keys, sealed under the KEK
    XKS_STORES = "xks_stores"  # their stores' SigV4 secrets, sealed under the KEK
    LOCAL_KEKS = "local_keks"  # the local KEK, under the local root key


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...

    async def erase_dead_rows(self, *stores: KeyStore) -> None:
        """Make the database drop the superseded versions of ``stores``' rows, after a commit
        that overwrote or deleted key material (a destroyed DEK, a retired EKEK).

        An UPDATE or DELETE leaves the old bytes behind until the storage engine reclaims them:
        Postgres keeps dead tuples until VACUUM, SQLite keeps old page images in its WAL until a
        checkpoint. Runs outside any unit of work; ``ServiceUnavailable`` if the database is
        unreachable or busy.
        """
        ...
