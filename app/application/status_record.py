"""Recording what a sync or a revocation probe saw of the external key: the configuration's
status, the status history, the alert that is open while the chain cannot serve, the audit
event of a change, and the change feed that tells every replica."""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog

from app.application.context import AppContext
from app.application.lookups import load_keys, save_key_state
from app.application.ports import ExternalKeyDescription
from app.domain.alerts import Alert, KeyStatusChange, key_unusable_kind
from app.domain.audit import AuditResult
from app.domain.ekms_config import ExternalKmsConfig, ObservedKey, record_observed
from app.domain.external_keys import ExternalKey, chain_verdict
from app.domain.values import Caller, ExternalKeyStatus

log = structlog.get_logger(__name__)


def alert_message(status: ExternalKeyStatus, reason: str | None) -> str:
    """The alert says the true state: deleted is deleted, a refusal is a refusal."""
    why = f": {reason}" if reason else ""
    return f"the external key is {status.value}{why}"


async def record_observation(
    ctx: AppContext,
    caller: Caller,
    config: ExternalKmsConfig,
    seen: ExternalKeyDescription,
    key: ExternalKey | None = None,
    *,
    first: bool = True,
) -> bool:
    """Store what was seen of ``key`` (``None``: the configuration's first key); returns
    whether the status changed. When the revocation policy now stops the chain (any key's stop
    state or refusal under ``any``; every key's under ``all``), every replica's key chain is
    purged at once; otherwise each reloads its snapshot."""
    target: ObservedKey = config if key is None else key
    previous = target.external_key_status
    now = ctx.clock.now()
    changed = record_observed(
        target,
        seen.status,
        now,
        reason=seen.reason,
        reason_code=seen.reason_code,
        deletion_date=seen.deletion_date,
    )
    usable = seen.status is ExternalKeyStatus.ENABLED
    key_id = None if key is None else key.id
    kind = key_unusable_kind(None if first else key_id)
    details: dict[str, object] = {
        "from": previous.value,
        "to": seen.status.value,
        "reason_code": seen.reason_code.value if seen.reason_code else None,
    }
    if key_id is not None:
        details["external_key"] = str(key_id)
    async with ctx.uow() as uow:
        if key is None:
            await uow.config.save(config)
        else:
            await save_key_state(uow, config, key, first=first)
        if changed:
            await uow.status.record_change(
                KeyStatusChange(ctx.rng.uuid(), now, previous, seen.status, seen.reason, key_id)
            )
        if usable:
            await uow.status.close_alerts(kind, now)
        else:
            if changed:  # the open alert follows the state
                await uow.status.close_alerts(kind, now)
            await uow.status.open_alert(
                Alert(ctx.rng.uuid(), kind, alert_message(seen.status, seen.reason), now)
            )
        if changed:
            await uow.audit.append(
                [
                    ctx.event(
                        caller,
                        "ekms.status.change",
                        result=AuditResult.SUCCESS,
                        target=config.key_id if key is None else key.key_id,
                        reason=seen.reason,
                        details=details,
                    )
                ]
            )
        # The chain stops when the revocation policy says so with what is now recorded:
        # under ``all`` one key's stop leaves the KEK in memory while another key is usable.
        keys = await load_keys(uow, config)
        stops = chain_verdict(config.revocation_policy, keys, timedelta(0), now).error is not None
        await uow.commit()
    if changed:
        level = log.info if usable else log.error
        level(
            "external_key_status_changed",
            previous=previous.value,
            status=seen.status.value,
            reason=seen.reason,
            reason_code=seen.reason_code.value if seen.reason_code else None,
            external_key=None if key_id is None else str(key_id),
        )
    await ctx.changes.publish("purge" if stops else "status")
    return changed


async def record_inconclusive(
    ctx: AppContext, config: ObservedKey, why: str, key_id: uuid.UUID | None = None
) -> None:
    """A history note that a sync could not tell (ekms too busy); the status is untouched and
    ``last_sync_at`` stays, so the scheduler tries again on its next tick."""
    status = config.external_key_status
    async with ctx.uow() as uow:
        await uow.status.record_change(
            KeyStatusChange(ctx.rng.uuid(), ctx.clock.now(), status, status, why, key_id)
        )
        await uow.commit()
