"""The audit trail in SQL: append-only (the database refuses UPDATE and DELETE), paged by
``(at, id)``, hash-chained (app/domain/audit_chain.py).

``append`` serializes on the chain head: ``SELECT ... FOR UPDATE`` of the one
``audit_chain_head`` row (Postgres; SQLite has one writer anyway), so concurrent replicas extend
one chain; the lock is held until the appending transaction ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, RowMapping, and_, func, insert, or_, select, update

from app.application.ports import AuditQuery
from app.domain.audit import AuditEvent
from app.domain.audit_chain import GENESIS, ChainedEvent, chain
from app.infra.db import mappers as m
from app.infra.db import tables as t
from app.infra.db._base import SqlRepository

_t = t.audit_events
_head = t.audit_chain_head


class SqlaAuditRepository(SqlRepository):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        head = await self._one(select(_head.c.seq, _head.c.hash).with_for_update())
        if head is None:  # a schema made by create_all(); the migration inserts the head
            await self._execute(insert(_head).values(id=1, seq=0, hash=GENESIS))
            seq, digest = 0, GENESIS
        else:
            seq, digest = head["seq"], head["hash"]
        chained = chain(seq, digest, list(events))
        await self._execute(
            insert(_t),
            [
                {**m.audit_values(c.event), "seq": c.seq, "prev_hash": c.prev_hash, "hash": c.hash}
                for c in chained
            ],
        )
        last = chained[-1]
        await self._execute(update(_head).values(seq=last.seq, hash=last.hash))

    async def query(self, query: AuditQuery) -> Sequence[AuditEvent]:
        """Events matching every given filter, ordered by ``(at, id)`` ascending (descending
        with ``newest_first``, the cursor then meaning strictly before).

        ``since`` is inclusive and ``until`` exclusive; ``after`` is the cursor (the ``(at, id)``
        of the last event of the previous page): only events strictly after it are returned.
        """
        stmt = (
            select(_t)
            .where(*_conditions(query))
            .order_by(*_order(query))
            .limit(max(query.limit, 0))
        )
        return [m.audit_from_row(row) for row in await self._rows(stmt)]

    async def chain_start(self, since: datetime | None) -> ChainedEvent | None:
        stmt = select(_t).where(_t.c.seq.is_not(None))
        if since is not None:
            stmt = stmt.where(_t.c.at >= since)
        row = await self._one(stmt.order_by(_t.c.seq).limit(1))
        return _chained(row) if row is not None else None

    async def chain_page(self, after_seq: int, limit: int) -> Sequence[ChainedEvent]:
        stmt = select(_t).where(_t.c.seq > after_seq).order_by(_t.c.seq).limit(limit)
        return [_chained(row) for row in await self._rows(stmt)]

    async def chain_ends(self) -> tuple[int, int] | None:
        # One statement, so one snapshot even under READ COMMITTED.
        last = select(func.coalesce(func.max(_t.c.seq), 0)).scalar_subquery()
        row = await self._one(select(_head.c.seq, last.label("last")))
        return None if row is None else (int(row["seq"]), int(row["last"]))

    async def has_hash(self, digest: bytes) -> bool:
        return await self._one(select(_t.c.id).where(_t.c.hash == digest).limit(1)) is not None

    async def first_unchained(self, since: datetime) -> uuid.UUID | None:
        row = await self._one(
            select(_t.c.id)
            .where(_t.c.seq.is_(None), _t.c.at >= since)
            .order_by(_t.c.at, _t.c.id)
            .limit(1)
        )
        return None if row is None else row["id"]


def _chained(row: RowMapping) -> ChainedEvent:
    return ChainedEvent(m.audit_from_row(row), row["seq"], row["prev_hash"], row["hash"])


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if query.since is not None:
        conditions.append(_t.c.at >= query.since)
    if query.until is not None:
        conditions.append(_t.c.at < query.until)
    for column, value in (
        (_t.c.actor, query.actor),
        (_t.c.action, query.action),
        (_t.c.module, query.module),
        (_t.c.result, query.result),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.after is not None:
        at, event_id = query.after
        if query.newest_first:
            conditions.append(or_(_t.c.at < at, and_(_t.c.at == at, _t.c.id < event_id)))
        else:
            conditions.append(or_(_t.c.at > at, and_(_t.c.at == at, _t.c.id > event_id)))
    return conditions


def _order(query: AuditQuery) -> tuple[ColumnElement[object], ...]:
    if query.newest_first:
        return (_t.c.at.desc(), _t.c.id.desc())
    return (_t.c.at.asc(), _t.c.id.asc())
