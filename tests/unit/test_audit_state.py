"""What status and /metrics show of the audit buffer (``AuditBuffer.state()``): the mode, the
flush interval, the last non-empty flush's time and outcome, pending events, strict waiters
and failed flushes; on fakes of our own ports."""

from __future__ import annotations

import asyncio

import pytest

from app.application.audit import AuditBuffer
from app.domain.audit import AuditResult
from app.domain.errors import ServiceUnavailable
from app.infra.metrics import REGISTRY
from app.infra.system import SystemRandom
from app.infra.telemetry import COLLECTOR
from tests.fakes import FakeClock, InMemoryDatabase


def _record(buffer: AuditBuffer) -> None:
    buffer.record(actor="app", action="encrypt", result=AuditResult.SUCCESS, module="m")


async def test_the_state_follows_flushes_that_commit_and_fail() -> None:
    db, clock = InMemoryDatabase(), FakeClock()
    buffer = AuditBuffer(db, clock, SystemRandom(), interval=2.5)
    fresh = buffer.state()
    assert (fresh.strict, fresh.interval, fresh.last_flush_at, fresh.last_flush_ok) == (
        False,
        2.5,
        None,
        None,
    )
    await buffer.flush()  # nothing to write: not a flush that says anything about the store
    assert buffer.state().last_flush_ok is None
    _record(buffer)
    assert buffer.state().pending == 1
    db.down = True
    with pytest.raises(ServiceUnavailable):
        await buffer.flush()
    failed = buffer.state()
    assert (failed.last_flush_ok, failed.failed_flushes, failed.pending) == (False, 1, 1)
    assert failed.last_flush_at == clock.now()
    db.down = False
    await buffer.flush()
    ok = buffer.state()
    assert (ok.last_flush_ok, ok.failed_flushes, ok.pending) == (True, 1, 0)


async def test_strict_waiters_are_counted_while_they_wait_and_exported() -> None:
    db = InMemoryDatabase()
    buffer = AuditBuffer(db, FakeClock(), SystemRandom(), interval=3600, strict=True)
    _record(buffer)
    waiting = [asyncio.create_task(buffer.durable()) for _ in range(3)]
    await asyncio.sleep(0)
    assert buffer.state().waiters == 3
    previous = COLLECTOR.audit
    COLLECTOR.audit = buffer
    try:
        assert REGISTRY.get_sample_value("ekms_audit_strict_waiters") == 3
        assert REGISTRY.get_sample_value("ekms_audit_strict_mode") == 1
        assert REGISTRY.get_sample_value("ekms_audit_last_flush_timestamp_seconds") is None
        await buffer.flush()
        await asyncio.gather(*waiting)
        assert buffer.state().waiters == 0
        assert REGISTRY.get_sample_value("ekms_audit_strict_waiters") == 0
        assert REGISTRY.get_sample_value("ekms_audit_last_flush_ok") == 1
        assert REGISTRY.get_sample_value("ekms_audit_flush_failures_total") == 0
        stamp = REGISTRY.get_sample_value("ekms_audit_last_flush_timestamp_seconds")
        assert stamp == buffer.state().last_flush_at.timestamp()  # type: ignore[union-attr]
    finally:
        COLLECTOR.audit = previous
