"""SQL repositories of the external key store (``xks_stores``, ``xks_keys``) and their mappers.

Sealed bytes stay sealed here: a SigV4 secret is stored as the base64 of its KEK-sealed form.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, delete, select

from app.domain.errors import AlreadyExists
from app.domain.xks import (
    XksCredential,
    XksKey,
    XksKeyBackend,
    XksKeyStatus,
    XksKeyUsage,
    XksStore,
)
from app.infra.db._base import SqlRepository
from app.infra.db.tables_xks import xks_keys as _k
from app.infra.db.tables_xks import xks_stores as _s


def _credential_values(c: XksCredential) -> dict[str, Any]:
    return {
        "access_key_id": c.access_key_id,
        "sealed_secret": base64.b64encode(c.sealed_secret).decode("ascii"),
        "kek_id": str(c.kek_id),
        "created_at": c.created_at.isoformat(),
    }


def _credential(v: dict[str, Any]) -> XksCredential:
    return XksCredential(
        access_key_id=v["access_key_id"],
        sealed_secret=base64.b64decode(v["sealed_secret"]),
        kek_id=uuid.UUID(v["kek_id"]),
        created_at=datetime.fromisoformat(v["created_at"]),
    )


def _store_values(s: XksStore) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "uri_prefix": s.uri_prefix,
        "region": s.region,
        "credentials": [_credential_values(c) for c in s.credentials],
        "created_at": s.created_at,
    }


def _store(r: RowMapping) -> XksStore:
    return XksStore(
        id=r["id"],
        name=r["name"],
        uri_prefix=r["uri_prefix"],
        region=r["region"],
        credentials=tuple(_credential(c) for c in r["credentials"]),
        created_at=r["created_at"],
        revision=r["revision"],
    )


def _key_values(k: XksKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "store_id": k.store_id,
        "external_key_id": k.external_key_id,
        "usage": sorted(u.value for u in k.usage),
        "status": k.status.value,
        "sealed_key": k.sealed_key,
        "kek_id": k.kek_id,
        "allowed_principals": list(k.allowed_principals),
        "allowed_operations": list(k.allowed_operations),
        "created_at": k.created_at,
        "backend": k.backend.value,
    }


def _key(r: RowMapping) -> XksKey:
    return XksKey(
        id=r["id"],
        store_id=r["store_id"],
        external_key_id=r["external_key_id"],
        usage=frozenset(XksKeyUsage(u) for u in r["usage"]),
        status=XksKeyStatus(r["status"]),
        sealed_key=r["sealed_key"],
        kek_id=r["kek_id"],
        allowed_principals=tuple(r["allowed_principals"]),
        allowed_operations=tuple(r["allowed_operations"]),
        created_at=r["created_at"],
        revision=r["revision"],
        backend=XksKeyBackend(r["backend"]),
    )


def _store_taken() -> AlreadyExists:
    return AlreadyExists("an XKS store with that name or URI prefix exists")


def _key_taken() -> AlreadyExists:
    return AlreadyExists("the store has a key with that external key id")


class SqlaXksStoreRepository(SqlRepository):
    async def list(self) -> Sequence[XksStore]:
        return [_store(r) for r in await self._rows(select(_s).order_by(_s.c.name))]

    async def get(self, store_id: uuid.UUID) -> XksStore | None:
        row = await self._one(select(_s).where(_s.c.id == store_id))
        return _store(row) if row is not None else None

    async def add(self, store: XksStore) -> None:
        await self._insert(_s, _store_values(store) | {"revision": store.revision}, _store_taken)

    async def save(self, store: XksStore) -> None:
        values = _store_values(store)
        await self._update_versioned(_s, [_s.c.id == store.id], values, store, "the XKS store")

    async def delete(self, store_id: uuid.UUID) -> None:
        # Explicitly, not only by the foreign key: SQLite enforces it only with a pragma.
        await self._execute(delete(_k).where(_k.c.store_id == store_id))
        await self._execute(delete(_s).where(_s.c.id == store_id))


class SqlaXksKeyRepository(SqlRepository):
    async def list(self) -> Sequence[XksKey]:
        rows = await self._rows(select(_k).order_by(_k.c.store_id, _k.c.external_key_id))
        return [_key(r) for r in rows]

    async def get(self, key_id: uuid.UUID) -> XksKey | None:
        row = await self._one(select(_k).where(_k.c.id == key_id))
        return _key(row) if row is not None else None

    async def add(self, key: XksKey) -> None:
        await self._insert(_k, _key_values(key) | {"revision": key.revision}, _key_taken)

    async def save(self, key: XksKey) -> None:
        values = _key_values(key)
        await self._update_versioned(_k, [_k.c.id == key.id], values, key, "the XKS key")

    async def delete(self, key_id: uuid.UUID) -> None:
        await self._execute(delete(_k).where(_k.c.id == key_id))
