"""The audit chain head's lock is not held forever by a client that stopped mid-transaction.

A unit of work appends to the chain (so it holds the head row's lock) and then sits idle
without committing or closing its connection, as a frozen or cut-off process would. Postgres
ends that session after ``idle_in_transaction_session_timeout`` (set on ekms's connections),
which releases the lock: a second writer, queued on the head meanwhile, commits, and the stuck
transaction's rows never reach the chain.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from app.domain.audit import AuditEvent, AuditResult
from app.domain.errors import ServiceUnavailable
from app.infra.db import tables as t
from app.infra.db.engine import PG_IDLE_IN_TRANSACTION_TIMEOUT_S, create_engine
from app.infra.db.leader import PgAdvisoryLeader
from app.infra.db.uow import SqlaUnitOfWorkFactory
from app.infra.settings import Settings

pytestmark = pytest.mark.postgres


def _event(actor: str) -> AuditEvent:
    return AuditEvent(
        uuid.uuid4(), datetime.now(UTC), actor, "encrypt", AuditResult.SUCCESS, "m", count=1
    )


async def test_the_server_ends_a_stuck_transaction_holding_the_head(pg_url: str) -> None:
    stuck_engine = create_engine(pg_url, idle_in_transaction_timeout=1.0)
    other_engine = create_engine(pg_url, idle_in_transaction_timeout=1.0)
    try:
        stuck_uow = SqlaUnitOfWorkFactory(stuck_engine)
        other_uow = SqlaUnitOfWorkFactory(other_engine)
        async with stuck_uow() as stuck:
            await stuck.audit.append([_event("stuck")])  # holds the head's row lock from here

            async def other_writer() -> None:
                async with other_uow() as work:
                    await work.audit.append([_event("other")])
                    await work.commit()

            writer = asyncio.create_task(other_writer())
            await asyncio.sleep(0)
            # No statement from the stuck session from now on; the other writer waits on the
            # head until the server ends the stuck session (the bound only stops a hang).
            await asyncio.wait_for(writer, timeout=60)
            with pytest.raises(ServiceUnavailable):  # its session is gone: never committed
                await stuck.commit()
        async with other_engine.connect() as conn:
            actors = (await conn.execute(select(t.audit_events.c.actor))).scalars().all()
            head = (await conn.execute(select(t.audit_chain_head.c.seq))).scalar_one()
        assert list(actors) == ["other"]
        assert head == 1
    finally:
        await stuck_engine.dispose()
        await other_engine.dispose()


async def test_ekms_connections_carry_the_idle_timeout(pg_url: str) -> None:
    engine = create_engine(pg_url)
    off = create_engine(pg_url, idle_in_transaction_timeout=0)
    try:
        async with engine.connect() as conn:
            value = (await conn.execute(text("SHOW idle_in_transaction_session_timeout"))).scalar()
        async with off.connect() as conn:
            server = (await conn.execute(text("SHOW idle_in_transaction_session_timeout"))).scalar()
    finally:
        await engine.dispose()
        await off.dispose()
    assert value == f"{int(PG_IDLE_IN_TRANSACTION_TIMEOUT_S)}s"
    assert server == "0"  # the server's default: off
    assert Settings().db_idle_in_transaction_timeout_seconds == PG_IDLE_IN_TRANSACTION_TIMEOUT_S


async def test_the_leader_keeps_its_lock_across_idle_periods(pg_url: str) -> None:
    """The leader's dedicated connection checks itself between ticks; each check ends its own
    transaction, so the idle timeout never ends the session that holds the advisory lock."""
    mine = create_engine(pg_url, idle_in_transaction_timeout=0.5)
    theirs = create_engine(pg_url, idle_in_transaction_timeout=0.5)
    leader, other = PgAdvisoryLeader(mine), PgAdvisoryLeader(theirs)
    try:
        assert await leader.acquire()
        for _ in range(3):
            assert await leader.acquire()  # the check, then idle past the timeout
            await asyncio.sleep(1.0)
            assert not await other.acquire()  # still held: the session was never ended
        assert await leader.acquire()
    finally:
        await leader.release()
        await other.release()
        await mine.dispose()
        await theirs.dispose()
