"""The audit trail in SQL: append-only (the database refuses UPDATE and DELETE), paged by
``(at, id)``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, insert, or_, select

from app.application.ports import AuditQuery
from app.domain.audit import AuditEvent
from app.infra.db import mappers as m
from app.infra.db import tables as t
from app.infra.db._base import SqlRepository

_t = t.audit_events


class SqlaAuditRepository(SqlRepository):
    async def append(self, events: Sequence[AuditEvent]) -> None:
        if not events:
            return
        await self._execute(insert(_t), [m.audit_values(event) for event in events])

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
