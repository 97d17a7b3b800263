"""Verifying the audit hash chain: walk it in pages and report the first break."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.application.context import AppContext
from app.domain.audit_chain import GENESIS, ChainBreak, ChainWalk

PAGE = 1000


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The walk's outcome: rows checked, the first break (``None``: intact), where it started."""

    checked: int
    first_break: ChainBreak | None
    started_at: datetime | None

    @property
    def ok(self) -> bool:
        """Whether every walked row holds and nothing is missing, extra or unchained."""
        return self.first_break is None


async def verify_audit_chain(ctx: AppContext, since: datetime | None = None) -> ChainReport:
    """Walk the chain from its first row (or its first row at or after ``since``).

    Each page is read in its own transaction, so a long walk holds no lock the writers need.
    At the end, the recorded head and the last position are read in one snapshot: an append
    moves both in one transaction, so any difference is a deletion or an insertion.
    """
    async with ctx.uow() as uow:
        start = await uow.audit.chain_start(since)
    if start is None:
        return ChainReport(0, None, None)
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
                after = row.seq
        more = len(rows) == PAGE
    if walk.first_break is None:
        async with ctx.uow() as uow:
            ends = await uow.audit.chain_ends()
            unchained = await uow.audit.first_unchained(start.event.at)
        walk.finish(ends, unchained)
    return ChainReport(walk.count, walk.first_break, start.event.at)
