"""Signed audit checkpoints on the in-memory store: when one is due, what it signs, that the
seed is sealed under the KEK and survives a KEK rotation, and that verify catches a checkpoint
edited, deleted or re-keyed, and a tail cut after one."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.application.audit_checkpoints import (
    Checkpointer,
    current_signing_key,
    list_checkpoints,
    make_checkpoint,
)
from app.application.audit_verify import verify_audit_chain
from app.application.kek import rotate_kek
from app.domain.audit import AuditEvent, AuditResult
from app.domain.audit_chain import Break, chain
from app.domain.audit_checkpoint import AuditSigner, Checkpoint, seal_purpose
from app.domain.errors import DecryptionFailed, KeyUnavailable
from tests.unit.conftest import ADMIN, World

ROWS, SECONDS = 5, 60.0


async def _append(world: World, n: int) -> None:
    async with world.ctx.uow() as uow:
        for i in range(n):
            event = AuditEvent(
                uuid.uuid4(), world.clock.now(), f"svc-{i}", "encrypt", AuditResult.SUCCESS
            )
            await uow.audit.append([event])
        await uow.commit()


async def _checkpoint(world: World, force: bool = False) -> Checkpoint | None:
    return await make_checkpoint(world.ctx, rows=ROWS, seconds=SECONDS, force=force)


def _head(world: World) -> tuple[int, bytes]:
    return world.db.committed.audit_head


async def test_the_first_checkpoint_signs_the_head_with_a_key_sealed_under_the_kek(
    ready: World,
) -> None:
    await _append(ready, 3)
    seq, digest = _head(ready)
    made = await _checkpoint(ready)
    assert made is not None and (made.seq, made.hash, made.count) == (seq, digest, seq)
    key = await current_signing_key(ready.ctx)
    assert key is not None and key.key_id == made.key_id
    Ed25519PublicKey.from_public_bytes(key.public_key).verify(made.signature, made.payload())
    (stored,) = ready.db.committed.signing_keys
    kek = ready.ctx.chain.check_serving(await ready.ctx.chain.snapshot(), None)
    seed = kek.unseal(stored.wrapped_seed, seal_purpose(stored.id, stored.public_key))
    assert seed not in stored.wrapped_seed and AuditSigner(stored.id, seed).public_key == (
        key.public_key
    )
    with pytest.raises(DecryptionFailed):  # bound to its public key
        kek.unseal(stored.wrapped_seed, seal_purpose(stored.id, bytes(32)))
    actions = [e.action for e in ready.db.committed.audit]
    assert "audit.signing_key.create" in actions


async def test_the_payload_is_the_documented_json() -> None:
    checkpoint = Checkpoint(
        7,
        uuid.UUID(int=1),
        bytes(range(32)),
        datetime(2026, 1, 1, tzinfo=UTC),
        3,
        uuid.UUID(int=2),
    )
    assert checkpoint.payload() == (
        b'{"at":"2026-01-01T00:00:00.000000Z","count":3,'
        b'"event_id":"00000000-0000-0000-0000-000000000001",'
        b'"format":"ekms.audit.checkpoint.v1",'
        b'"hash":"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",'
        b'"key_id":"00000000-0000-0000-0000-000000000002","seq":7}'
    )


async def test_a_checkpoint_is_due_after_rows_or_seconds_and_never_twice_for_one_head(
    ready: World,
) -> None:
    await _append(ready, 1)
    first = await _checkpoint(ready)
    assert first is not None
    assert _head(ready)[0] == first.seq + 1  # the signing key's creation, audited after it
    assert await _checkpoint(ready) is None  # not due: one row, no time
    await _append(ready, ROWS - 2)
    assert await _checkpoint(ready) is None  # neither enough rows nor enough time
    await _append(ready, 1)
    by_rows = await _checkpoint(ready)
    assert by_rows is not None and by_rows.count == by_rows.seq - first.seq >= ROWS
    assert await _checkpoint(ready) is None  # the same head
    await _append(ready, 1)
    assert await _checkpoint(ready) is None
    ready.clock.advance(SECONDS)
    by_time = await _checkpoint(ready)
    assert by_time is not None and by_time.seq - by_time.count == by_rows.seq
    ready.clock.advance(SECONDS)
    assert await _checkpoint(ready) is None  # time alone: nothing new to sign
    assert sorted(ready.db.committed.checkpoints) == [first.seq, by_rows.seq, by_time.seq]


async def test_no_checkpoint_without_a_serving_key_chain(world: World) -> None:
    with pytest.raises(KeyUnavailable):
        await _checkpoint(world)
    assert world.db.committed.checkpoints == {} and world.db.committed.signing_keys == []


async def test_a_kek_rotation_reseals_the_signing_key(ready: World) -> None:
    await _append(ready, 2)
    before = await _checkpoint(ready)
    await rotate_kek(ready.ctx, ADMIN)
    await _append(ready, 1)
    after = await _checkpoint(ready, force=True)
    assert before is not None and after is not None and after.key_id == before.key_id
    assert len(ready.db.committed.signing_keys) == 1
    kek = ready.ctx.chain.check_serving(await ready.ctx.chain.snapshot(), None)
    assert ready.db.committed.signing_keys[0].kek_id == kek.id
    report = await verify_audit_chain(ready.ctx)
    assert report.ok and report.checkpoints == 2 and report.keys_verified


async def test_checkpoints_page_in_order_with_their_public_key(ready: World) -> None:
    for _ in range(3):
        await _append(ready, 1)
        await _checkpoint(ready, force=True)
    first = await list_checkpoints(ready.ctx, 0, 2)
    assert first.more and len(first.items) == 2
    rest = await list_checkpoints(ready.ctx, first.items[-1][0].seq, 2)
    assert not rest.more and len(rest.items) == 1
    seqs = [c.seq for c, _ in first.items + rest.items]
    assert seqs == sorted(ready.db.committed.checkpoints)
    key = await current_signing_key(ready.ctx)
    assert key is not None and {pk for _, pk in first.items + rest.items} == {key.public_key}


async def _three_checkpoints(world: World) -> list[Checkpoint]:
    made = []
    for _ in range(3):
        await _append(world, 2)
        checkpoint = await _checkpoint(world, force=True)
        assert checkpoint is not None
        made.append(checkpoint)
    return made


async def test_verify_checks_every_checkpoint_of_an_intact_chain(ready: World) -> None:
    await _three_checkpoints(ready)
    report = await verify_audit_chain(ready.ctx)
    assert report.ok and report.checkpoints == 3 and report.keys_verified


async def test_an_edited_checkpoint_is_reported(ready: World) -> None:
    made = await _three_checkpoints(ready)
    edited = dataclasses.replace(made[1], at=made[1].at.replace(year=2020))
    ready.db.committed.checkpoints[edited.seq] = edited
    report = await verify_audit_chain(ready.ctx)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.CHECKPOINT, made[1].seq)
    assert "signature" in report.first_break.detail


async def test_a_deleted_checkpoint_is_reported_as_a_gap(ready: World) -> None:
    made = await _three_checkpoints(ready)
    del ready.db.committed.checkpoints[made[1].seq]
    report = await verify_audit_chain(ready.ctx)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.CHECKPOINT, made[2].seq)
    assert "missing" in report.first_break.detail


async def test_a_rechained_history_is_caught_by_the_checkpoint_after_it(ready: World) -> None:
    made = await _three_checkpoints(ready)
    # Rewrite the whole chain (every hash recomputed, head moved): only a checkpoint can tell.
    store = ready.db.committed
    rows = sorted(store.audit_chain, key=lambda c: c.seq)
    events = [r.event for r in rows]
    events[0] = dataclasses.replace(events[0], actor="mallory")
    store.audit_chain = chain(0, bytes(32), events)
    store.audit_head = (store.audit_chain[-1].seq, store.audit_chain[-1].hash)
    report = await verify_audit_chain(ready.ctx)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.ALTERED, made[0].seq)
    assert report.checked == made[0].seq - 1


async def test_a_forged_signing_key_is_reported(ready: World) -> None:
    made = await _three_checkpoints(ready)
    # Swap in an attacker's public key and re-sign every checkpoint with it.
    mallory = AuditSigner(made[0].key_id, bytes([7]) * 32)
    store = ready.db.committed
    store.signing_keys = [
        dataclasses.replace(k, public_key=mallory.public_key) for k in store.signing_keys
    ]
    for c in made:
        store.checkpoints[c.seq] = mallory.sign(c)
    report = await verify_audit_chain(ready.ctx)
    assert report.first_break is not None and report.first_break.kind is Break.CHECKPOINT
    assert "sealed seed" in report.first_break.detail


async def test_a_cut_tail_after_a_checkpoint_is_reported_deleted(ready: World) -> None:
    made = await _three_checkpoints(ready)
    store = ready.db.committed
    keep = made[2].seq - 1
    store.audit_chain = [c for c in store.audit_chain if c.seq <= keep]
    kept = {c.event.id for c in store.audit_chain}
    store.audit = [e for e in store.audit if e.id in kept]
    last = max(store.audit_chain, key=lambda c: c.seq)
    store.audit_head = (last.seq, last.hash)  # the head moved back too
    report = await verify_audit_chain(ready.ctx)
    assert report.first_break is not None
    assert (report.first_break.kind, report.first_break.seq) == (Break.DELETED, keep + 1)


async def test_the_export_verifies_offline_with_the_documented_snippet(ready: World) -> None:
    await _three_checkpoints(ready)
    page = await list_checkpoints(ready.ctx, 0, 100)
    lines = [
        json.dumps(
            {
                "seq": c.seq,
                "count": c.count,
                "public_key": base64.b64encode(pk).decode(),
                "signature": base64.b64encode(c.signature).decode(),
                "payload": c.payload().decode(),
            }
        )
        for c, pk in page.items
    ]
    previous = 0
    for line in lines:  # docs/audit.md, "Checking checkpoints offline"
        cp = json.loads(line)
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(cp["public_key"]))
        key.verify(base64.b64decode(cp["signature"]), cp["payload"].encode())
        signed = json.loads(cp["payload"])
        assert signed["seq"] - signed["count"] == previous
        previous = signed["seq"]
    assert previous == max(ready.db.committed.checkpoints)


async def test_the_checkpointer_signs_the_first_head_after_seconds_or_rows(ready: World) -> None:
    ticker = Checkpointer(ready.ctx, rows=50, seconds=SECONDS)
    assert ticker.poll == 5.0
    await _append(ready, 3)
    assert await ticker.tick() is None  # neither 50 rows nor 60 s since it started
    ready.clock.advance(SECONDS)
    first = await ticker.tick()
    assert first is not None and first.seq == _head(ready)[0] - 1 and ticker.made == 1
    await _append(ready, 50)
    assert await ticker.tick() is not None and ticker.made == 2


async def test_the_checkpointer_logs_and_goes_on_when_the_chain_cannot_serve(world: World) -> None:
    ticker = Checkpointer(world.ctx, rows=1, seconds=SECONDS)
    assert await ticker.tick() is None and ticker.made == 0  # not configured: no raise


async def test_verify_since_checks_the_later_checkpoints_without_a_false_gap(ready: World) -> None:
    made = []
    for _ in range(3):
        ready.clock.advance(10)  # rows of each round at their own time
        await _append(ready, 2)
        checkpoint = await _checkpoint(ready, force=True)
        assert checkpoint is not None
        made.append(checkpoint)
    # seq + 1 is the signing key's creation, audited with the first round; + 2 opens round 2
    after_first = next(c for c in ready.db.committed.audit_chain if c.seq == made[0].seq + 2)
    report = await verify_audit_chain(ready.ctx, since=after_first.event.at)
    assert report.ok and report.checkpoints == 2  # the first lies before the walk
    edited = dataclasses.replace(made[2], count=made[2].count + 1)
    ready.db.committed.checkpoints[edited.seq] = edited
    report = await verify_audit_chain(ready.ctx, since=after_first.event.at)
    assert report.first_break is not None and report.first_break.seq == made[2].seq
