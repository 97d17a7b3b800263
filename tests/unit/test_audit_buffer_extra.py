"""Extra pairs on a data-plane audit event: part of the aggregation key, and in the row."""

from __future__ import annotations

import secrets
import uuid

from app.application.audit import AuditBuffer
from app.domain.audit import AuditResult
from tests.fakes import FakeClock, InMemoryDatabase


class _Rng:
    def token_bytes(self, n: int) -> bytes:
        return secrets.token_bytes(n)

    def uuid(self) -> uuid.UUID:
        return uuid.uuid4()


async def test_events_that_differ_only_in_extra_are_separate_rows_carrying_their_pairs() -> None:
    db = InMemoryDatabase()
    buffer = AuditBuffer(db, FakeClock(), _Rng())  # type: ignore[arg-type]
    for _ in range(3):
        buffer.record(actor="app", action="decrypt", result=AuditResult.SUCCESS, module="m")
    buffer.record(
        actor="app",
        action="decrypt",
        result=AuditResult.SUCCESS,
        module="m",
        extra=(("justification_code", "CUSTOMER_REQUEST"),),
        count=2,
    )

    assert await buffer.flush() == 2

    rows = sorted(db.committed.audit, key=lambda e: e.count)
    assert [(e.count, dict(e.details)) for e in rows] == [
        (2, {"justification_code": "CUSTOMER_REQUEST"}),
        (3, {}),
    ]
