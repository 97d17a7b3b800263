"""Verifying the audit hash chain: walk it in pages, check the signed checkpoints on the way,
and report the first break."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.application.context import AppContext
from app.domain.audit_chain import GENESIS, ChainBreak, ChainWalk
from app.domain.audit_checkpoint import AuditSigner, Checkpoint, SigningKeyRecord, seal_purpose
from app.domain.audit_checkpoint_walk import CheckpointWalk
from app.domain.errors import DecryptionFailed, EkmsError

PAGE = 1000


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The walk's outcome: rows checked, the first break (``None``: intact), where it started;
    how many checkpoints matched the chain, and whether every signing key they name was proven
    sealed under the current KEK (``False`` when the key chain cannot serve, or a key is sealed
    under an older chain's KEK: their signatures are then checked against the stored public
    keys only, which the exported copies and the status's public key back up)."""

    checked: int
    first_break: ChainBreak | None
    started_at: datetime | None
    checkpoints: int = 0
    keys_verified: bool = True

    @property
    def ok(self) -> bool:
        """Whether every walked row holds and nothing is missing, extra or unchained."""
        return self.first_break is None


async def verify_audit_chain(ctx: AppContext, since: datetime | None = None) -> ChainReport:
    """Walk the chain from its first row (or its first row at or after ``since``).

    Each page is read in its own transaction, so a long walk holds no lock the writers need.
    At the end, the recorded head and the last position are read in one snapshot: an append
    moves both in one transaction, so any difference is a deletion or an insertion. The
    checkpoints are read before the walk: each lies at or before the head then, so every one
    must match a walked row.
    """
    async with ctx.uow() as uow:
        start = await uow.audit.chain_start(since)
    if start is None:
        return ChainReport(0, None, None)
    signed, keys_verified = await _checkpoints(ctx, start.seq, whole=since is None)
    if since is None:
        walk = ChainWalk(start=1, prev_hash=GENESIS)
    else:  # the rows before ``since`` are not walked: trust the first row's link
        walk = ChainWalk(start=start.seq, prev_hash=None)
    after, more = start.seq - 1, True
    while more and walk.first_break is None:
        async with ctx.uow() as uow:
            rows = await uow.audit.chain_page(after, PAGE)
            for row in rows:
                elsewhere = walk.needs_lookup(row) and await uow.audit.has_hash(row.prev_hash)
                if walk.feed(row, elsewhere) is not None:
                    break
                found = signed.check(row)
                if found is not None:
                    walk.first_break = found
                    walk.count -= 1  # the row itself holds; it is what the checkpoint refutes
                    break
                after = row.seq
        more = len(rows) == PAGE
    if walk.first_break is None:
        async with ctx.uow() as uow:
            ends = await uow.audit.chain_ends()
            unchained = await uow.audit.first_unchained(start.event.at)
        walk.finish(ends, unchained)
    if walk.first_break is None:
        walk.first_break = signed.finish(after)
    return ChainReport(walk.count, walk.first_break, start.event.at, signed.checked, keys_verified)


async def _checkpoints(
    ctx: AppContext, first_seq: int, *, whole: bool
) -> tuple[CheckpointWalk, bool]:
    """The checkpoints from ``first_seq`` on, and whether their signing keys are proven."""
    found: list[Checkpoint] = []
    async with ctx.uow() as uow:
        while True:
            page = await uow.checkpoints.page(
                max(first_seq - 1, found[-1].seq if found else 0), PAGE
            )
            found.extend(page)
            if len(page) < PAGE:
                break
        keys = list(await uow.checkpoints.signing_keys())
    used = {c.key_id for c in found}
    keys = [k for k in keys if k.id in used]
    forged, verified = await _authenticate(ctx, keys)
    walk = CheckpointWalk(
        found, {k.id: k.public_key for k in keys}, forged, contiguous_from=0 if whole else None
    )
    return walk, verified


async def _authenticate(
    ctx: AppContext, keys: list[SigningKeyRecord]
) -> tuple[frozenset[uuid.UUID], bool]:
    """The keys whose public key does not open their seed under the current KEK, and whether
    every key could be checked at all."""
    if not keys:
        return frozenset(), True
    try:
        kek = ctx.chain.check_serving(await ctx.chain.snapshot(), None)
    except EkmsError:
        return frozenset(), False
    forged: set[uuid.UUID] = set()
    verified = True
    for key in keys:
        if key.kek_id != kek.id:
            verified = False
            continue
        try:
            seed = kek.unseal(key.wrapped_seed, seal_purpose(key.id, key.public_key))
        except DecryptionFailed:
            forged.add(key.id)
            continue
        if AuditSigner(key.id, seed).public_key != key.public_key:
            forged.add(key.id)
        del seed
    return frozenset(forged), verified
