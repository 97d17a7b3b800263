"""Reading the audit trail: one page of events matching a filter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from app.application.context import AppContext
from app.application.ports import AuditQuery
from app.domain.audit import AuditEvent
from app.domain.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of audit events and the cursor of the next."""

    events: Sequence[AuditEvent]
    more: bool


async def list_audit_events(ctx: AppContext, query: AuditQuery) -> AuditPage:
    """Events ordered by (at, id); ``more`` says whether a next page exists after the last."""
    if query.since and query.until and query.since >= query.until:
        raise InvalidInput("since must be earlier than until", field="until")
    if not 1 <= query.limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    async with ctx.uow() as uow:
        events = await uow.audit.query(replace(query, limit=query.limit + 1))
    return AuditPage(events[: query.limit], len(events) > query.limit)
