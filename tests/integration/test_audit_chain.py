"""The audit hash chain on Postgres: a superuser who disables the append-only triggers and edits,
deletes, inserts or swaps rows is caught by verify; two replicas appending at once keep one
intact chain."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from app.application.audit_verify import ChainReport, verify_audit_chain
from app.application.modules import ModuleInput, create_module
from app.bootstrap import Container, running
from app.domain.audit import AuditEvent, AuditResult
from app.domain.audit_chain import Break, link
from app.domain.values import Caller
from app.infra.settings import Settings

pytestmark = pytest.mark.postgres

ROWS = 12
ADMIN = Caller("admin", frozenset({"ekms.admin"}))


def _settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=pg_url,
        data_dir=tmp_path,
        jwt_hs256_secret="z" * 40,
        scheduler_enabled=False,
        audit_flush_seconds=60,  # the tests flush themselves
    )


@pytest.fixture
async def node(pg_url: str, tmp_path: Path) -> AsyncIterator[Container]:
    async with running(_settings(pg_url, tmp_path)) as container:
        for i in range(ROWS):  # one flush a row: ROWS chained rows, ROWS flushes
            container.ctx.audit.record(
                actor=f"svc-{i}", action="encrypt", result=AuditResult.SUCCESS, module="m.a"
            )
            assert await container.ctx.audit.flush() == 1
        yield container


async def _tamper(node: Container, *statements: str, **params: object) -> None:
    """As a superuser: switch the append-only triggers off, run ``statements``, switch back."""
    async with node.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for statement in statements:
            await conn.execute(text(statement), params)
        await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


async def _id_at(node: Container, seq: int) -> uuid.UUID:
    async with node.engine.connect() as conn:
        found = await conn.scalar(text("SELECT id FROM audit_events WHERE seq = :s"), {"s": seq})
    assert isinstance(found, uuid.UUID)
    return found


async def _verify(node: Container) -> ChainReport:
    return await verify_audit_chain(node.ctx)


async def test_an_untouched_chain_is_intact(node: Container) -> None:
    report = await _verify(node)
    assert report.ok and report.first_break is None
    assert report.checked >= ROWS  # the rows above, and any startup events before them


async def test_an_edited_row_is_reported_altered(node: Container) -> None:
    target = await _id_at(node, 5)
    await _tamper(node, "UPDATE audit_events SET actor = 'mallory' WHERE id = :id", id=target)
    report = await _verify(node)
    assert report.first_break is not None and not report.ok
    assert (report.first_break.kind, report.first_break.seq) == (Break.ALTERED, 5)
    assert report.first_break.event_id == target and report.checked == 4


async def test_an_edited_and_rehashed_row_is_reported_altered(node: Container) -> None:
    # The attacker recomputes the row's own hash; the next row still links to the old one.
    async with node.ctx.uow() as uow:
        row = (await uow.audit.chain_page(4, 1))[0]
    forged = link(row.prev_hash, replace(row.event, actor="mallory"))
    await _tamper(
        node,
        "UPDATE audit_events SET actor = 'mallory', hash = :hash WHERE seq = 5",
        hash=forged,
    )
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.ALTERED, 5)
    assert report.checked == 5  # row 5 itself matches its (forged) hash


async def test_a_deleted_row_is_reported_deleted(node: Container) -> None:
    await _tamper(node, "DELETE FROM audit_events WHERE seq = 7")
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.DELETED, 7)
    assert report.checked == 6


async def test_a_deleted_last_row_is_reported_deleted(node: Container) -> None:
    await _tamper(node, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    report = await _verify(node)
    assert report.first_break is not None and report.first_break.kind is Break.DELETED


async def test_an_inserted_row_is_reported_inserted(node: Container) -> None:
    inserted = uuid.uuid4()
    await _tamper(
        node,
        "INSERT INTO audit_events (id, at, actor, action, result, details, count) VALUES "
        "(:id, now(), 'mallory', 'encrypt', 'success', '{}', 1)",
        id=inserted,
    )
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.event_id) == (Break.INSERTED, inserted)


async def test_a_row_inserted_past_the_head_is_reported_inserted(node: Container) -> None:
    # A forged row with the next position and a correct hash, but the head was not moved.
    async with node.engine.connect() as conn:
        head = (await conn.execute(text("SELECT seq, hash FROM audit_chain_head"))).one()
    forged = AuditEvent(uuid.uuid4(), datetime.now(UTC), "mallory", "encrypt", AuditResult.SUCCESS)
    digest = link(head.hash, forged)
    await _tamper(
        node,
        "INSERT INTO audit_events (id, at, actor, action, result, details, count, seq, "
        "prev_hash, hash) VALUES (:id, :at, 'mallory', 'encrypt', 'success', '{}', 1, :seq, "
        ":prev, :hash)",
        id=forged.id,
        at=forged.at,
        seq=head.seq + 1,
        prev=head.hash,
        hash=digest,
    )
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.INSERTED, head.seq + 1)


async def test_swapped_rows_are_reported_reordered(node: Container) -> None:
    await _tamper(
        node,
        "UPDATE audit_events SET seq = -1 WHERE seq = 4",
        "UPDATE audit_events SET seq = 4 WHERE seq = 8",
        "UPDATE audit_events SET seq = 8 WHERE seq = -1",
    )
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.REORDERED, 4)
    assert report.checked == 3


async def test_since_walks_only_the_rows_from_then(node: Container) -> None:
    await _tamper(node, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    async with node.engine.connect() as conn:
        at = await conn.scalar(text("SELECT at FROM audit_events WHERE seq = 6"))
    assert isinstance(at, datetime)
    report = await verify_audit_chain(node.ctx, since=at)
    assert report.ok and report.started_at == at.astimezone(UTC)


async def test_two_replicas_appending_at_once_keep_one_intact_chain(
    pg_url: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(running(_settings(pg_url, tmp_path))) for _ in range(2)
        ]

        async def write(node: Container, name: str) -> None:
            for i in range(40):
                node.ctx.audit.record(
                    actor=f"{name}-{i}", action="decrypt", result=AuditResult.SUCCESS
                )
                await node.ctx.audit.flush()
                if i % 10 == 0:  # an admin action: its event is appended in its own transaction
                    await create_module(node.ctx, ADMIN, ModuleInput(f"global.{name}m{i}"))

        await asyncio.gather(*(write(n, f"node{k}") for k, n in enumerate(nodes)))
        report = await _verify(nodes[0])
        async with nodes[0].engine.connect() as conn:
            stored = await conn.scalar(text("SELECT count(*) FROM audit_events"))
            unchained = await conn.scalar(
                text("SELECT count(*) FROM audit_events WHERE seq IS NULL")
            )
    assert report.ok, report.first_break
    assert unchained == 0 and report.checked == stored and stored >= 88  # 80 flushed + 8 admin
