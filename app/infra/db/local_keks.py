"""The local KEK in SQL: the one ``local_instance_keys`` row (``singleton`` keeps it to one)."""

from __future__ import annotations

from sqlalchemy import select

from app.domain.local_kek import LocalInstanceKey
from app.infra.db._base import SqlRepository, concurrent_update
from app.infra.db.tables_local import local_instance_keys


class SqlaLocalKeyRepository(SqlRepository):
    _t = local_instance_keys

    async def get(self) -> LocalInstanceKey | None:
        row = await self._one(select(self._t).where(self._t.c.singleton == 1))
        if row is None:
            return None
        return LocalInstanceKey(
            id=row["id"],
            wrapped_kek=bytes(row["wrapped_kek"]),
            key_name=row["key_name"],
            encryption_context=dict(row["encryption_context"]),
            fingerprint=row["fingerprint"],
            created_at=row["created_at"],
        )

    async def add(self, key: LocalInstanceKey) -> None:
        values = {
            "id": key.id,
            "singleton": 1,
            "wrapped_kek": key.wrapped_kek,
            "key_name": key.key_name,
            "encryption_context": dict(key.encryption_context),
            "fingerprint": key.fingerprint,
            "created_at": key.created_at,
        }
        await self._insert(self._t, values, lambda: concurrent_update("the local KEK"))
