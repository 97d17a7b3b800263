"""The audit hash chain's encoding and the verify walk, on the in-memory store: the walk names
the first break of each kind, and the paging does not lose rows."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.application import audit_verify
from app.application.audit_verify import verify_audit_chain
from app.domain.audit import AuditEvent, AuditResult
from app.domain.audit_chain import GENESIS, Break, canonical, chain, link
from tests.unit.conftest import World

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(i: int) -> AuditEvent:
    return AuditEvent(
        uuid.UUID(int=i), T0 + timedelta(seconds=i), "alice", "key.revoke", AuditResult.SUCCESS
    )


def test_the_canonical_encoding_is_the_documented_one() -> None:
    event = dataclasses.replace(_event(1), at=T0)
    expected = (
        b'{"action":"key.revoke","actor":"alice","at":"2026-01-01T00:00:00.000000Z","count":1,'
        b'"details":{},"id":"00000000-0000-0000-0000-000000000001","module":null,"reason":null,'
        b'"result":"success","target":null}'
    )
    assert canonical(event) == expected  # docs/audit.md
    assert link(GENESIS, event) == hashlib.sha256(GENESIS + expected).digest()
    nested = dataclasses.replace(event, details={"b": 1, "a": "é"})
    assert b'"details":{"a":"\xc3\xa9","b":1}' in canonical(nested)


def test_every_field_is_covered_by_the_hash() -> None:
    event = dataclasses.replace(_event(1), module="m.a", target="t", reason="r")
    changed = [
        dataclasses.replace(event, **{name: value})
        for name, value in (
            ("id", uuid.UUID(int=2)),
            ("at", event.at + timedelta(microseconds=1)),
            ("actor", "bob"),
            ("action", "key.rotate"),
            ("result", AuditResult.DENIED),
            ("module", None),
            ("target", "u"),
            ("reason", None),
            ("details", {"x": 1}),
            ("count", 2),
        )
    ]
    hashes = {link(GENESIS, e) for e in [event, *changed]}
    assert len(hashes) == 1 + len(changed)
    assert link(bytes([1]) * 32, event) != link(GENESIS, event)


async def _appended(world: World, n: int) -> None:
    async with world.ctx.uow() as uow:
        for i in range(1, n + 1):
            await uow.audit.append([_event(i)])
        await uow.commit()


async def test_an_intact_chain_is_ok_across_pages(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_verify, "PAGE", 3)  # 10 rows: four pages
    await _appended(world, 10)
    report = await verify_audit_chain(world.ctx)
    assert report.ok and report.checked == 10 and report.started_at == _event(1).at
    assert (await verify_audit_chain(world.ctx, since=_event(6).at)).checked == 5


async def test_an_empty_trail_is_ok() -> None:
    from tests.unit.conftest import build_world

    report = await verify_audit_chain(build_world().ctx)
    assert report.ok and report.checked == 0 and report.started_at is None


@pytest.mark.parametrize(
    ("tamper", "kind", "seq"),
    [
        ("edit", Break.ALTERED, 4),
        ("delete", Break.DELETED, 4),
        ("delete_first", Break.DELETED, 1),
        ("delete_last", Break.DELETED, 6),
        ("swap", Break.REORDERED, 2),
        ("insert_past_head", Break.INSERTED, 7),
    ],
)
async def test_each_tampering_is_named(world: World, tamper: str, kind: Break, seq: int) -> None:
    await _appended(world, 6)
    rows = world.db.committed.audit_chain
    by_seq = {c.seq: c for c in rows}
    if tamper == "edit":
        rows[rows.index(by_seq[4])] = dataclasses.replace(
            by_seq[4], event=dataclasses.replace(by_seq[4].event, actor="mallory")
        )
    elif tamper.startswith("delete"):
        rows.remove(by_seq[{"delete": 4, "delete_first": 1, "delete_last": 6}[tamper]])
    elif tamper == "swap":
        a, b = rows.index(by_seq[2]), rows.index(by_seq[5])
        rows[a], rows[b] = (
            dataclasses.replace(by_seq[5], seq=2),
            dataclasses.replace(by_seq[2], seq=5),
        )
    else:
        rows.extend(chain(6, by_seq[6].hash, [_event(7)]))
    report = await verify_audit_chain(world.ctx)
    assert report.first_break is not None and not report.ok
    assert (report.first_break.kind, report.first_break.seq) == (kind, seq)


async def test_a_row_without_a_position_after_the_start_is_reported(world: World) -> None:
    await _appended(world, 3)
    stray = _event(9)  # as an older replica (or a superuser) writes it: no chain position
    world.db.committed.audit.append(stray)
    report = await verify_audit_chain(world.ctx)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.event_id) == (Break.INSERTED, stray.id)
    assert "older than schema 0009" in report.first_break.detail
