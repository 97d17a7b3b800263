"""Module key versions in SQL: one row per (module, version), at most one ACTIVE per module."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, case, select, update

from app.domain.module import ModuleKey
from app.infra.db import mappers as m
from app.infra.db import tables as t
from app.infra.db._base import SqlRepository, concurrent_update


class SqlaModuleKeyRepository(SqlRepository):
    """Module key versions; a module has at most one ACTIVE version."""

    _t = t.module_keys

    async def list_for_module(self, module_id: uuid.UUID) -> Sequence[ModuleKey]:
        stmt = select(self._t).where(self._t.c.module_id == module_id).order_by(self._t.c.version)
        return [m.module_key_from_row(row) for row in await self._rows(stmt)]

    async def list_all(self) -> Sequence[ModuleKey]:
        stmt = select(self._t).order_by(self._t.c.module_id, self._t.c.version)
        return [m.module_key_from_row(row) for row in await self._rows(stmt)]

    async def get(self, module_id: uuid.UUID, version: int) -> ModuleKey | None:
        stmt = select(self._t).where(self._t.c.module_id == module_id, self._t.c.version == version)
        row = await self._one(stmt)
        return None if row is None else m.module_key_from_row(row)

    async def add(self, key: ModuleKey) -> None:
        values = m.module_key_values(key) | {"revision": key.revision}
        what = f"key version {key.version} of the module"
        await self._insert(self._t, values, lambda: concurrent_update(what))

    async def save(self, key: ModuleKey) -> None:
        """Save the lifecycle fields. The counts are left alone: ``add_usage`` and
        ``reserve_usage`` own them, and writing back a count read before the latest flush or
        reservation would lose encryptions."""
        where = [self._t.c.module_id == key.module_id, self._t.c.version == key.version]
        values = m.module_key_values(key)
        del values["encryption_count"], values["encryptions_reserved"]
        await self._update_versioned(
            self._t, where, values, key, f"key version {key.version} of the module"
        )

    async def add_usage(self, counts: Mapping[tuple[uuid.UUID, int], int]) -> None:
        """Add encryption counts; ``revision`` is untouched so lifecycle saves do not conflict.

        Rows are updated in key order, so concurrent flushes cannot deadlock each other.
        """
        params = [
            {"b_module_id": module_id, "b_version": version, "b_count": count}
            for (module_id, version), count in sorted(counts.items())
            if count
        ]
        if not params:
            return
        stmt = (
            update(self._t)
            .where(
                self._t.c.module_id == bindparam("b_module_id"),
                self._t.c.version == bindparam("b_version"),
            )
            .values(encryption_count=self._t.c.encryption_count + bindparam("b_count"))
        )
        await self._execute(stmt, params)

    async def reserve_usage(
        self, module_id: uuid.UUID, version: int, amount: int, limit: int
    ) -> int | None:
        """Reserve ``amount`` encryptions: one atomic ``UPDATE ... RETURNING``.

        The reservation starts at the larger of the performed and the reserved count, and is
        refused (``None``) when it would end past ``limit``: replicas reserving concurrently
        are serialised by the row lock, so together they never pass it. Returns the new mark.
        """
        c = self._t.c
        base = case(
            (c.encryptions_reserved >= c.encryption_count, c.encryptions_reserved),
            else_=c.encryption_count,
        )
        stmt = (
            update(self._t)
            .where(c.module_id == module_id, c.version == version, base + amount <= limit)
            .values(encryptions_reserved=base + amount)
            .returning(c.encryptions_reserved)
        )
        row = (await self._execute(stmt)).first()
        return None if row is None else int(row[0])
