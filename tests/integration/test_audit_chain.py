"""The audit hash chain on Postgres: a superuser who disables the append-only triggers and edits,
deletes, inserts or swaps rows is caught by verify, and so is one who cuts the tail after a
signed checkpoint, re-hashes a rewritten history, or edits or deletes a checkpoint; two
replicas appending (and checkpointing) at once keep one intact chain."""

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
from sqlalchemy.exc import DBAPIError

from app.application.audit_checkpoints import make_checkpoint
from app.application.audit_verify import ChainReport, verify_audit_chain
from app.application.modules import ModuleInput, create_module
from app.bootstrap import Container, running
from app.domain.audit import AuditEvent, AuditResult
from app.domain.audit_chain import GENESIS, Break, chain, link
from app.domain.audit_checkpoint import Checkpoint
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


# Signed checkpoints: what a superuser cannot hide from verify once a head was signed.


async def _checkpointed(node: Container, at_rows: tuple[int, ...]) -> list[Checkpoint]:
    """Checkpoints signed when the chain held each of ``at_rows`` rows past the fixture's."""
    made: list[Checkpoint] = []
    done = 0
    for target in at_rows:
        for i in range(target - done):
            node.ctx.audit.record(actor=f"cp-{i}", action="decrypt", result=AuditResult.SUCCESS)
            await node.ctx.audit.flush()
        done = target
        checkpoint = await make_checkpoint(node.ctx, rows=10_000, seconds=3600, force=True)
        assert checkpoint is not None
        made.append(checkpoint)
    return made


async def _tamper_checkpoints(node: Container, statement: str, **params: object) -> None:
    async with node.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"))
        await conn.execute(text(statement), params)
        await conn.execute(text("ALTER TABLE audit_checkpoints ENABLE TRIGGER USER"))


async def test_checkpoints_of_an_untouched_chain_all_match(node: Container) -> None:
    made = await _checkpointed(node, (2, 4, 6))
    report = await _verify(node)
    assert report.ok and report.checkpoints == len(made) and report.keys_verified


async def test_the_database_refuses_to_change_a_checkpoint(node: Container) -> None:
    await _checkpointed(node, (1,))
    for statement in ("UPDATE audit_checkpoints SET count = 0", "DELETE FROM audit_checkpoints"):
        with pytest.raises(DBAPIError):
            async with node.engine.begin() as conn:
                await conn.execute(text(statement))


async def test_a_tail_cut_after_a_checkpoint_with_the_head_moved_back_is_reported(
    node: Container,
) -> None:
    made = await _checkpointed(node, (2, 5))
    keep = made[0].seq + 1  # rows up to and including the last checkpoint's go
    async with node.engine.connect() as conn:
        digest = await conn.scalar(
            text("SELECT hash FROM audit_events WHERE seq = :s"), {"s": keep}
        )
    await _tamper(
        node,
        "DELETE FROM audit_events WHERE seq > :keep",
        "UPDATE audit_chain_head SET seq = :keep, hash = :hash",
        keep=keep,
        hash=digest,
    )
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.DELETED, keep + 1)
    assert "checkpoint" in report.first_break.detail


async def test_an_edited_checkpoint_is_reported(node: Container) -> None:
    made = await _checkpointed(node, (2, 4, 6))
    await _tamper_checkpoints(
        node, "UPDATE audit_checkpoints SET count = count + 1 WHERE seq = :s", s=made[1].seq
    )
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.CHECKPOINT, made[1].seq)


async def test_a_deleted_checkpoint_is_reported(node: Container) -> None:
    made = await _checkpointed(node, (2, 4, 6))
    await _tamper_checkpoints(node, "DELETE FROM audit_checkpoints WHERE seq = :s", s=made[1].seq)
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.CHECKPOINT, made[2].seq)
    assert "missing" in report.first_break.detail


async def test_a_rewritten_and_rehashed_history_is_caught_by_a_checkpoint(node: Container) -> None:
    made = await _checkpointed(node, (3,))
    async with node.ctx.uow() as uow:
        rows = list(await uow.audit.chain_page(0, 10_000))
    forged_events = [r.event for r in rows]
    forged_events[1] = replace(forged_events[1], actor="mallory")
    forged = chain(0, GENESIS, forged_events)
    statements, params = [], {}
    for c in forged:
        statements.append(
            f"UPDATE audit_events SET actor = :a{c.seq}, prev_hash = :p{c.seq}, "  # noqa: S608
            f"hash = :h{c.seq} WHERE seq = {c.seq}"
        )
        params.update({f"a{c.seq}": c.event.actor, f"p{c.seq}": c.prev_hash, f"h{c.seq}": c.hash})
    statements.append("UPDATE audit_chain_head SET hash = :head")
    await _tamper(node, *statements, head=forged[-1].hash, **params)
    report = await _verify(node)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.ALTERED, made[0].seq)


async def test_two_replicas_checkpointing_at_once_make_one_checkpoint_a_head(
    pg_url: str, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        nodes = [
            await stack.enter_async_context(running(_settings(pg_url, tmp_path))) for _ in range(2)
        ]

        async def work(node: Container, name: str) -> int:
            made = 0
            for i in range(15):
                node.ctx.audit.record(
                    actor=f"{name}-{i}", action="encrypt", result=AuditResult.SUCCESS
                )
                await node.ctx.audit.flush()
                both = await asyncio.gather(
                    *(make_checkpoint(n.ctx, rows=1, seconds=3600) for n in nodes)
                )
                made += sum(c is not None for c in both)
            return made

        made = sum(await asyncio.gather(*(work(n, f"node{k}") for k, n in enumerate(nodes))))
        report = await _verify(nodes[0])
        async with nodes[0].engine.connect() as conn:
            stored = await conn.scalar(text("SELECT count(*) FROM audit_checkpoints"))
            keys = await conn.scalar(text("SELECT count(*) FROM audit_signing_keys"))
    assert report.ok, report.first_break
    assert stored == made == report.checkpoints and made >= 2 and keys == 1
