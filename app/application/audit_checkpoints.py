"""Signed checkpoints of the audit chain: made every N rows or T seconds, listed for export.

Every replica runs a ``Checkpointer``. Making a checkpoint is one transaction that locks the
chain's head as an append does (so replicas take turns, and the head cannot move meanwhile),
reads the last checkpoint, and signs the head when it is due: ``rows`` positions past the last
checkpoint, or ``seconds`` after it (after the process started, for the first) with at least
one new row. A second replica that finds the
head already checkpointed does nothing (and the primary key on the position would refuse a
duplicate all the same).

The signing key (Ed25519) is ekms's own: its 32-byte seed is drawn from the ``RandomSource`` the
first time, sealed under the KEK (``KeyEncryptionKey.seal``, bound to the key id and its public
key) and stored; only the public key is kept in clear. A KEK rotation reseals it
(``app.application.kek``). Without a serving key chain (not configured, external key revoked)
no checkpoint is made: the seed is sealed under the KEK like every other key.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog

from app.application.context import AppContext
from app.application.ports import UnitOfWork
from app.domain.audit_checkpoint import (
    SEED_SIZE,
    AuditSigner,
    Checkpoint,
    SigningKeyRecord,
    seal_purpose,
)
from app.domain.errors import EkmsError, InvalidInput
from app.domain.keys import KeyEncryptionKey
from app.domain.values import SYSTEM

log = structlog.get_logger(__name__)

_NONCE = 12


@dataclass(frozen=True, slots=True)
class CheckpointPage:
    """Checkpoints in position order, each with its signing key's public key."""

    items: tuple[tuple[Checkpoint, bytes], ...]
    more: bool


async def make_checkpoint(
    ctx: AppContext,
    *,
    rows: int,
    seconds: float,
    force: bool = False,
    started: datetime | None = None,
) -> Checkpoint | None:
    """Sign the chain's head if a checkpoint is due (always, with ``force``, when the head
    moved since the last one); the checkpoint made, or ``None``. Before the first checkpoint
    the time counts from ``started`` (due at once without it).

    ``KeyUnavailable`` / ``ServiceUnavailable`` when the key chain cannot serve or the database
    is away: the next attempt tries again.
    """
    kek = ctx.chain.check_serving(await ctx.chain.snapshot(), None)
    async with ctx.uow() as uow:
        head = await uow.checkpoints.lock_head()
        if head.event_id is None:
            return None
        now = ctx.clock.now()
        last = await uow.checkpoints.last()
        last_seq = last.seq if last is not None else 0
        if head.seq <= last_seq:
            return None
        since = last.at if last is not None else started
        due = (
            force
            or since is None
            or head.seq - last_seq >= rows
            or (now - since).total_seconds() >= seconds
        )
        if not due:
            return None
        signer = await _signer(ctx, uow, kek)
        checkpoint = signer.sign(
            Checkpoint(head.seq, head.event_id, head.hash, now, head.seq - last_seq, signer.key_id)
        )
        if not await uow.checkpoints.add(checkpoint):
            return None
        await uow.commit()
    return checkpoint


async def _signer(ctx: AppContext, uow: UnitOfWork, kek: KeyEncryptionKey) -> AuditSigner:
    """The newest signing key sealed under the current KEK; a new one if there is none."""
    current = [k for k in await uow.checkpoints.signing_keys() if k.kek_id == kek.id]
    if current:
        key = current[-1]
        return AuditSigner(
            key.id, kek.unseal(key.wrapped_seed, seal_purpose(key.id, key.public_key))
        )
    seed = ctx.rng.token_bytes(SEED_SIZE)
    signer = AuditSigner(ctx.rng.uuid(), seed)
    wrapped = kek.seal(
        seed, seal_purpose(signer.key_id, signer.public_key), ctx.rng.token_bytes(_NONCE)
    )
    del seed
    await uow.checkpoints.add_signing_key(
        SigningKeyRecord(signer.key_id, kek.id, wrapped, signer.public_key, ctx.clock.now())
    )
    # Appended after the head was read: the checkpoint covers the rows before this event.
    await uow.audit.append(
        [
            ctx.event(
                SYSTEM,
                "audit.signing_key.create",
                details={"key_id": str(signer.key_id), "public_key": signer.public_key.hex()},
            )
        ]
    )
    return signer


async def reseal_signing_keys(
    ctx: AppContext, uow: UnitOfWork, old_kek: KeyEncryptionKey, new_kek: KeyEncryptionKey
) -> int:
    """Within a KEK rotation's transaction: reseal every signing key sealed under ``old_kek``
    under ``new_kek`` (the same seed, so the public key and every signature stay valid).

    Takes the chain head's lock first, as ``make_checkpoint`` does, so no signing key can be
    created under ``old_kek`` between this read and the rotation's commit. (The rotation holds
    module key rows already; a flush locks those before the head too: the same order.)"""
    await uow.checkpoints.lock_head()
    count = 0
    for key in await uow.checkpoints.signing_keys():
        if key.kek_id != old_kek.id:
            continue
        purpose = seal_purpose(key.id, key.public_key)
        seed = old_kek.unseal(key.wrapped_seed, purpose)
        resealed = new_kek.seal(seed, purpose, ctx.rng.token_bytes(_NONCE))
        del seed
        await uow.checkpoints.rewrap_signing_key(key.id, new_kek.id, resealed)
        count += 1
    return count


async def list_checkpoints(ctx: AppContext, after_seq: int, limit: int) -> CheckpointPage:
    """Checkpoints after position ``after_seq``, oldest first, with their public keys."""
    if not 1 <= limit <= 1000:
        raise InvalidInput("limit must be between 1 and 1000", field="limit")
    if after_seq < 0:
        raise InvalidInput("cursor must not be negative", field="cursor")
    async with ctx.uow() as uow:
        found = await uow.checkpoints.page(after_seq, limit + 1)
        keys = {k.id: k.public_key for k in await uow.checkpoints.signing_keys()}
    page = found[:limit]
    return CheckpointPage(tuple((c, keys.get(c.key_id, b"")) for c in page), len(found) > limit)


@dataclass(frozen=True, slots=True)
class SigningKeyInfo:
    """The current audit signing key, as published in status."""

    key_id: uuid.UUID
    public_key: bytes


async def current_signing_key(ctx: AppContext) -> SigningKeyInfo | None:
    """The newest audit signing key (``None`` before the first checkpoint)."""
    async with ctx.uow() as uow:
        keys = await uow.checkpoints.signing_keys()
    return SigningKeyInfo(keys[-1].id, keys[-1].public_key) if keys else None


class Checkpointer:
    """Tries to make a checkpoint every ``poll`` seconds (at most 5 s, at most ``seconds``)."""

    def __init__(self, ctx: AppContext, *, rows: int, seconds: float) -> None:
        self._ctx = ctx
        self.rows = rows
        self.seconds = seconds
        self.poll = min(seconds, 5.0)
        self.made = 0
        self.started = ctx.clock.now()

    async def tick(self) -> Checkpoint | None:
        """One attempt; failures are logged, never raised (the next tick tries again)."""
        try:
            made = await make_checkpoint(
                self._ctx, rows=self.rows, seconds=self.seconds, started=self.started
            )
        except EkmsError as exc:
            log.debug("audit_checkpoint_skipped", reason=exc.reason.value)
            return None
        except Exception:
            log.exception("audit_checkpoint_failed")
            return None
        if made is not None:
            self.made += 1
        return made

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            await self.tick()
