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

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.application.context import AppContext
from app.application.lookups import load_keys, load_wraps, require_config
from app.application.sync import KeySyncReport, SyncReport, sync_external_key
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
class _KeyRecord:
    """What the last sync recorded of one external key."""

    key: uuid.UUID
    status: ExternalKeyStatus
    reason: str | None
    synced_at: datetime | None
    marker: str | None


@dataclass(frozen=True, slots=True)
class _Recorded:
    """What the last sync recorded of every external key, the first first."""

    keys: tuple[_KeyRecord, ...]

    @property
    def synced_at(self) -> tuple[datetime | None, ...]:
        return tuple(k.synced_at for k in self.keys)

    def report_since(self, before: _Recorded) -> SyncReport:
        """The report of the sync that recorded ``self`` after ``before``."""
        earlier = {k.key: k for k in before.keys}
        return SyncReport(
            tuple(
                KeySyncReport(
                    key=now.key,
                    status=now.status,
                    previous=then.status,
                    changed=now.status is not then.status,
                    reason=now.reason,
                    rewrapped=now.marker != then.marker,
                    rotation_marker=now.marker,
                )
                for now in self.keys
                for then in [earlier.get(now.key, now)]
            )
        )


async def _recorded(ctx: AppContext) -> _Recorded:
    async with ctx.uow() as uow:
        config = await require_config(uow)
        keys = await load_keys(uow, config)
        wraps = await load_wraps(uow, keys, await uow.instance_keys.get_active())
    return _Recorded(
        tuple(
            _KeyRecord(
                key=key.id,
                status=key.external_key_status,
                reason=key.status_reason,
                synced_at=key.last_sync_at,
                marker=wraps[key.id].rotation_marker if key.id in wraps else None,
            )
            for key in keys
        )
    )
