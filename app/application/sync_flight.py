"""Asking for the external key sync: join the one that runs rather than race it.

Two syncs at once used to race on the configuration row, and the later one answered 409
``CONCURRENT_UPDATE`` (a manual ``POST /ekms/sync`` meeting the scheduler's sync). Now, in one
process, every caller that asks while a sync runs shares that run and gets its result
(``AppContext.sync_runs``). Across replicas the sync runs under ``SyncLock``: a replica that
finds it held waits for it, then answers what the other replica's sync recorded; only when
that sync recorded nothing (it was inconclusive or failed) does it run its own, still holding
the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.application.context import AppContext
from app.application.lookups import require_config
from app.application.sync import SyncReport, sync_external_key
from app.domain.values import SYSTEM, Caller, ExternalKeyStatus


async def sync_or_join(ctx: AppContext, caller: Caller = SYSTEM) -> SyncReport:
    """Run the external key sync now, or join the sync under way (here or on another
    replica) and answer its result."""
    return await ctx.sync_runs.run(lambda: _sync_across_replicas(ctx, caller))


async def _sync_across_replicas(ctx: AppContext, caller: Caller) -> SyncReport:
    before = await _recorded(ctx)
    async with ctx.sync_lock.hold() as waited:
        if waited:
            after = await _recorded(ctx)
            if after.synced_at != before.synced_at:
                return after.report_since(before)
        return await sync_external_key(ctx, caller)


@dataclass(frozen=True, slots=True)
class _Recorded:
    """What the last sync recorded of the external key."""

    status: ExternalKeyStatus
    reason: str | None
    synced_at: datetime | None
    marker: str | None

    def report_since(self, before: _Recorded) -> SyncReport:
        """The report of the sync that recorded ``self`` after ``before``."""
        return SyncReport(
            status=self.status,
            previous=before.status,
            changed=self.status is not before.status,
            reason=self.reason,
            rewrapped=self.marker != before.marker,
            rotation_marker=self.marker,
        )


async def _recorded(ctx: AppContext) -> _Recorded:
    async with ctx.uow() as uow:
        config = await require_config(uow)
        ekek = await uow.instance_keys.get_active()
    return _Recorded(
        status=config.external_key_status,
        reason=config.status_reason,
        synced_at=config.last_sync_at,
        marker=ekek.rotation_marker if ekek else None,
    )
