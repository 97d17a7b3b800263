"""SQL repository for the external key status history and alerts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import RowMapping, insert, select, update

from app.domain.alerts import Alert, KeyStatusChange
from app.domain.values import ExternalKeyStatus
from app.infra.db import tables as t
from app.infra.db._base import SqlRepository

_h = t.external_key_status_history
_a = t.alerts


def _alert(row: RowMapping) -> Alert:
    return Alert(row["id"], row["kind"], row["message"], row["opened_at"], row["closed_at"])


class SqlaKeyStatusRepository(SqlRepository):
    async def record_change(self, change: KeyStatusChange) -> None:
        await self._execute(
            insert(_h).values(
                id=change.id,
                at=change.at,
                previous=change.previous.value,
                status=change.status.value,
                reason=change.reason,
                external_key_id=change.external_key_id,
            )
        )

    async def history(self, limit: int = 50) -> Sequence[KeyStatusChange]:
        rows = await self._rows(select(_h).order_by(_h.c.at.desc(), _h.c.id).limit(limit))
        return [
            KeyStatusChange(
                r["id"],
                r["at"],
                ExternalKeyStatus(r["previous"]),
                ExternalKeyStatus(r["status"]),
                r["reason"],
                r["external_key_id"],
            )
            for r in rows
        ]

    async def open_alert(self, alert: Alert) -> bool:
        existing = await self._one(
            select(_a.c.id).where(_a.c.kind == alert.kind, _a.c.closed_at.is_(None))
        )
        if existing is not None:
            return False
        await self._execute(
            insert(_a).values(
                id=alert.id,
                kind=alert.kind,
                message=alert.message,
                opened_at=alert.opened_at,
                closed_at=None,
            )
        )
        return True

    async def close_alerts(self, kind: str, at: datetime) -> int:
        result = await self._execute(
            update(_a).where(_a.c.kind == kind, _a.c.closed_at.is_(None)).values(closed_at=at)
        )
        return int(result.rowcount)

    async def open_alerts(self) -> Sequence[Alert]:
        rows = await self._rows(select(_a).where(_a.c.closed_at.is_(None)).order_by(_a.c.opened_at))
        return [_alert(r) for r in rows]
