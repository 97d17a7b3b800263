"""Strict audit mode (group commit) on fakes of our own ports: a data-plane call answers only
once its event is committed; one flush writes everyone who waits; a failed flush fails the
callers waiting on it (AUDIT_UNAVAILABLE) and keeps their events; buffered mode never waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from app.application.audit import AuditBuffer
from app.application.crypto import Item
from app.application.targets import Target
from app.bootstrap import wire_application
from app.domain.audit import AuditResult
from app.domain.errors import AccessDenied, Reason, ServiceUnavailable
from app.infra.system import SystemRandom
from tests.fakes import FakeClock, FakeKmsConnector, InMemoryDatabase, LocalChangeFeed
from tests.unit.conftest import APP, World

NEVER = 3600.0  # the tick never fires during a test: only a waiting caller makes a flush


def _record(buffer: AuditBuffer, actor: str = "app") -> None:
    buffer.record(actor=actor, action="encrypt", result=AuditResult.SUCCESS, module="m")


def _written(db: InMemoryDatabase) -> int:
    return sum(e.count for e in db.committed.audit)


@contextlib.asynccontextmanager
async def _flushing(buffer: AuditBuffer) -> AsyncIterator[None]:
    task = asyncio.create_task(buffer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _strict_buffer(db: InMemoryDatabase) -> AuditBuffer:
    return AuditBuffer(db, FakeClock(), SystemRandom(), interval=NEVER, strict=True)


async def test_a_strict_caller_returns_only_once_its_event_is_committed() -> None:
    db = InMemoryDatabase()
    buffer = _strict_buffer(db)
    async with _flushing(buffer):
        _record(buffer)
        assert _written(db) == 0
        await buffer.durable()
        assert _written(db) == 1
        assert buffer.depth == 0


async def test_one_flush_writes_every_caller_waiting_at_once() -> None:
    db = InMemoryDatabase()
    buffer = _strict_buffer(db)

    async def call(n: int) -> int:
        _record(buffer, actor=f"app-{n}")
        await buffer.durable()
        return _written(db)

    async with _flushing(buffer):
        seen = await asyncio.gather(*(call(n) for n in range(50)))
    assert min(seen) >= 1 and _written(db) == 50
    assert all(count >= 1 for count in seen)
    assert db.transactions <= 2, "group commit: one transaction for everyone waiting"


async def test_a_failed_flush_fails_its_callers_closed_and_keeps_their_events() -> None:
    db = InMemoryDatabase()
    buffer = _strict_buffer(db)
    async with _flushing(buffer):
        db.down = True
        _record(buffer)
        with pytest.raises(ServiceUnavailable) as refused:
            await buffer.durable()
        assert refused.value.reason is Reason.AUDIT_UNAVAILABLE
        assert buffer.depth == 1 and _written(db) == 0
        db.down = False
        _record(buffer, actor="later")
        await buffer.durable()
    assert sorted(e.actor for e in db.committed.audit) == ["app", "later"]


async def test_a_caller_that_goes_away_does_not_cancel_the_others() -> None:
    db = InMemoryDatabase()
    buffer = _strict_buffer(db)
    _record(buffer, actor="leaves")
    leaving = asyncio.create_task(buffer.durable())
    _record(buffer, actor="stays")
    staying = asyncio.create_task(buffer.durable())
    await asyncio.sleep(0)
    leaving.cancel()
    async with _flushing(buffer):
        await staying
    assert leaving.cancelled()
    assert sorted(e.actor for e in db.committed.audit) == ["leaves", "stays"]


class _GatedDatabase:
    """The in-memory database whose units of work wait at a gate before they start."""

    def __init__(self, db: InMemoryDatabase) -> None:
        self.db = db
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[object]:
        self.entered.set()
        await self.gate.wait()
        async with self.db() as uow:
            yield uow


async def test_an_interrupted_flush_hands_its_waiters_to_the_next() -> None:
    db = InMemoryDatabase()
    gated = _GatedDatabase(db)
    buffer = AuditBuffer(gated, FakeClock(), SystemRandom(), interval=NEVER, strict=True)  # type: ignore[arg-type]
    _record(buffer)
    waiter = asyncio.create_task(buffer.durable())
    await asyncio.sleep(0)
    flush = asyncio.create_task(buffer.flush())
    await gated.entered.wait()  # the batch is taken, the transaction not begun
    _record(buffer, actor="meanwhile")
    later = asyncio.create_task(buffer.durable())
    await asyncio.sleep(0)
    flush.cancel()  # as at shutdown
    with contextlib.suppress(asyncio.CancelledError):
        await flush
    assert not waiter.done() and not later.done()
    assert buffer.depth == 2, "the interrupted batch is pending again"
    gated.gate.set()
    await buffer.flush()
    await asyncio.gather(waiter, later)
    assert sorted(e.actor for e in db.committed.audit) == ["app", "meanwhile"]


async def test_a_flush_that_hangs_fails_its_callers_instead_of_holding_them() -> None:
    db = InMemoryDatabase()
    gated = _GatedDatabase(db)  # the gate never opens: a database path that drops everything
    buffer = AuditBuffer(gated, FakeClock(), SystemRandom(), interval=NEVER, strict=True)  # type: ignore[arg-type]
    buffer.flush_timeout = 0.01
    async with _flushing(buffer):
        _record(buffer)
        with pytest.raises(ServiceUnavailable) as refused:
            await buffer.durable()
    assert refused.value.reason is Reason.AUDIT_UNAVAILABLE
    assert buffer.depth == 1 and buffer.failed_flushes >= 1


async def test_buffered_mode_never_waits_for_a_flush() -> None:
    db = InMemoryDatabase()
    buffer = AuditBuffer(db, FakeClock(), SystemRandom(), interval=NEVER)
    _record(buffer)
    await buffer.durable()
    assert _written(db) == 0 and buffer.depth == 1


async def test_the_data_plane_answers_after_the_commit_or_fails_closed() -> None:
    db = InMemoryDatabase()
    connector = FakeKmsConnector()
    app = wire_application(
        uow=db,
        kms=connector,
        clock=FakeClock(),
        rng=SystemRandom(),
        changes=LocalChangeFeed,
        instance_id="test-instance",
        unavailable_grace=timedelta(minutes=15),
        audit_interval=NEVER,
        audit_strict=True,
    )
    world = World(app.ctx, db, connector, FakeClock(), app.crypto)
    await world.configure()
    await world.module()
    target = Target(module="global.payroll")
    async with _flushing(app.ctx.audit):
        blob = await world.encrypt(b"v")
        assert [e.action for e in db.committed.audit if e.actor == APP.subject] == ["encrypt"]
        results = await world.crypto.decrypt_batch(APP, [Item(target, blob, b"")] * 3)
        assert all(r.error is None for r in results)
        served = [(e.action, e.count) for e in db.committed.audit if e.actor == APP.subject]
        assert sorted(served) == [("decrypt", 3), ("encrypt", 1)]

        db.down = True
        with pytest.raises(ServiceUnavailable) as refused:
            await world.crypto.encrypt(APP, Item(target, b"w", b""))
        assert refused.value.reason is Reason.AUDIT_UNAVAILABLE
        with pytest.raises(ServiceUnavailable) as refused:
            await world.crypto.decrypt(APP, Item(target, b"not a ciphertext", b""))
        assert refused.value.reason is Reason.AUDIT_UNAVAILABLE
        db.down = False
        assert await world.decrypt(blob) == b"v"
    outcomes = {(e.action, e.result.value) for e in db.committed.audit if e.actor == APP.subject}
    assert ("decrypt", "failure") in outcomes  # the refused calls' events were kept


async def test_a_mac_refusal_is_answered_only_once_its_denial_is_committed() -> None:
    db = InMemoryDatabase()
    connector = FakeKmsConnector()
    app = wire_application(
        uow=db,
        kms=connector,
        clock=FakeClock(),
        rng=SystemRandom(),
        changes=LocalChangeFeed,
        instance_id="test-instance",
        unavailable_grace=timedelta(minutes=15),
        audit_interval=NEVER,
        audit_strict=True,
    )
    world = World(app.ctx, db, connector, FakeClock(), app.crypto)
    await world.configure()
    await world.module()  # role payroll: encrypt, decrypt, rewrap; not mac
    item = Item(Target(module="global.payroll"), b"v", b"")
    async with _flushing(app.ctx.audit):
        await world.encrypt(b"warm")  # the key chain loaded while the database is there
        db.down = True
        with pytest.raises(ServiceUnavailable) as refused:
            await world.crypto.compute_mac(APP, item)
        assert refused.value.reason is Reason.AUDIT_UNAVAILABLE
        db.down = False
        with pytest.raises(AccessDenied):
            await world.crypto.compute_mac(APP, item)
        macs = [e for e in db.committed.audit if e.actor == APP.subject and e.action == "mac"]
        assert {e.result for e in macs} == {AuditResult.DENIED}
        assert sum(e.count for e in macs) == 2  # the refused call's denial was kept too
