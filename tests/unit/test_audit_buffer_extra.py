"""Extra pairs on a data-plane audit event: part of the aggregation key, and in the row."""

from __future__ import annotations

import secrets
import uuid
from types import SimpleNamespace

import pytest

from app.application.audit import AuditBuffer
from app.domain.audit import AuditResult
from app.domain.errors import ServiceUnavailable
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


async def test_usage_counts_reach_the_key_store_by_module_id_after_a_failed_flush() -> None:
    """Counts wait keyed by the module id's integer; the store gets ``(uuid.UUID, version)``,
    summed per version, also for what a failed flush put back."""
    db = InMemoryDatabase()
    module, other = uuid.uuid4(), uuid.uuid4()
    for ref in ((module, 1), (module, 2), (other, 1)):
        db.committed.keys[ref] = SimpleNamespace(encryption_count=0)
    buffer = AuditBuffer(db, FakeClock(), _Rng())  # type: ignore[arg-type]
    buffer.count_usage(module, 1, 3)
    buffer.count_usage(uuid.UUID(str(module)), 1)  # an equal id, another object
    buffer.count_usage(other, 1, 5)
    db.down = True
    with pytest.raises(ServiceUnavailable):
        await buffer.flush()
    db.down = False
    buffer.count_usage(module, 2, 7)
    buffer.count_usage(module, 1)
    await buffer.flush()
    counts = {ref: key.encryption_count for ref, key in db.committed.keys.items()}
    assert counts == {(module, 1): 5, (module, 2): 7, (other, 1): 5}
    await buffer.flush()  # nothing left to add twice
    assert db.committed.keys[(module, 1)].encryption_count == 5
