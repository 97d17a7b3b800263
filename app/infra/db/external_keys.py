"""SQL repository for the configuration's external keys (``external_keys``), and its mapper."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import RowMapping, delete, select

from app.domain.external_keys import ExternalKey
from app.domain.values import KmsProvider
from app.infra.db import tables as t
from app.infra.db._base import SqlRepository, concurrent_update
from app.infra.db.mappers import Values, observed_from_row, observed_values

_k = t.external_keys


def external_key_values(k: ExternalKey) -> Values:
    return {
        "id": k.id,
        "position": k.position,
        "provider": k.provider.value,
        "key_id": k.key_id,
        "region": k.region,
        "created_at": k.created_at,
    } | observed_values(k)


def external_key_from_row(r: RowMapping) -> ExternalKey:
    return ExternalKey(
        id=r["id"],
        position=r["position"],
        provider=KmsProvider(r["provider"]),
        key_id=r["key_id"],
        region=r["region"],
        created_at=r["created_at"],
        revision=r["revision"],
        **observed_from_row(r),
    )


class SqlaExternalKeyRepository(SqlRepository):
    """The external keys, ordered by position (the first key first)."""

    async def list(self) -> Sequence[ExternalKey]:
        rows = await self._rows(select(_k).order_by(_k.c.position))
        return [external_key_from_row(row) for row in rows]

    async def add(self, key: ExternalKey) -> None:
        values = external_key_values(key) | {"revision": key.revision}
        await self._insert(_k, values, lambda: concurrent_update("the external keys"))

    async def save(self, key: ExternalKey) -> None:
        values = external_key_values(key)
        await self._update_versioned(_k, [_k.c.id == key.id], values, key, "the external key")

    async def delete(self, key_id: uuid.UUID) -> None:
        await self._execute(delete(_k).where(_k.c.id == key_id))
