"""The local KEK in SQL: the one ``local_instance_keys`` row (``singleton`` keeps it to one)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update

from app.domain.local_kek import LocalInstanceKey
from app.infra.db._base import SqlRepository, concurrent_update
from app.infra.db.tables_local import local_instance_keys


class SqlaLocalKeyRepository(SqlRepository):
    _t = local_instance_keys

    async def get(self, *, share: bool = False) -> LocalInstanceKey | None:
        statement = select(self._t).where(self._t.c.singleton == 1)
        if share:
            statement = statement.with_for_update(read=True)  # SQLite: BEGIN IMMEDIATE already
        row = await self._one(statement)
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
        await self._insert(self._t, _values(key), lambda: concurrent_update("the local KEK"))

    async def replace(self, old_id: uuid.UUID, new: LocalInstanceKey) -> None:
        statement = (
            update(self._t)
            .where(self._t.c.singleton == 1, self._t.c.id == old_id)
            .values(**_values(new))
        )
        if (await self._execute(statement)).rowcount != 1:
            raise concurrent_update("the local KEK")


def _values(key: LocalInstanceKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "singleton": 1,
        "wrapped_kek": key.wrapped_kek,
        "key_name": key.key_name,
        "encryption_context": dict(key.encryption_context),
        "fingerprint": key.fingerprint,
        "created_at": key.created_at,
    }
