"""Recording what a sync or a revocation probe saw of the external key: the configuration's
status, the status history, the alert that is open while the chain cannot serve, the audit
event of a change, and the change feed that tells every replica."""

from __future__ import annotations

import structlog

from app.application.context import AppContext
from app.application.ports import ExternalKeyDescription
from app.domain.alerts import KEY_UNUSABLE, Alert, KeyStatusChange
from app.domain.audit import AuditResult
from app.domain.ekms_config import ExternalKmsConfig
from app.domain.values import Caller, ExternalKeyStatus

log = structlog.get_logger(__name__)

_STOPS = (ExternalKeyStatus.DISABLED, ExternalKeyStatus.PENDING_DELETION, ExternalKeyStatus.DELETED)


def alert_message(status: ExternalKeyStatus, reason: str | None) -> str:
    """The alert says the true state: deleted is deleted, a refusal is a refusal."""
    why = f": {reason}" if reason else ""
    return f"the external key is {status.value}{why}"


async def record_observation(
    ctx: AppContext, caller: Caller, config: ExternalKmsConfig, seen: ExternalKeyDescription
) -> bool:
    """Store what was seen; returns whether the status changed. A stop state or a refusal
    purges every replica's key chain at once."""
    previous = config.external_key_status
    now = ctx.clock.now()
    changed = config.record_status(
        seen.status,
        now,
        reason=seen.reason,
        reason_code=seen.reason_code,
        deletion_date=seen.deletion_date,
    )
    usable = seen.status is ExternalKeyStatus.ENABLED
    async with ctx.uow() as uow:
        await uow.config.save(config)
        if changed:
            await uow.status.record_change(
                KeyStatusChange(ctx.rng.uuid(), now, previous, seen.status, seen.reason)
            )
        if usable:
            await uow.status.close_alerts(KEY_UNUSABLE, now)
        else:
            if changed:  # the open alert follows the state
                await uow.status.close_alerts(KEY_UNUSABLE, now)
            await uow.status.open_alert(
                Alert(ctx.rng.uuid(), KEY_UNUSABLE, alert_message(seen.status, seen.reason), now)
            )
        if changed:
            await uow.audit.append(
                [
                    ctx.event(
                        caller,
                        "ekms.status.change",
                        result=AuditResult.SUCCESS,
                        target=config.key_id,
                        reason=seen.reason,
                        details={
                            "from": previous.value,
                            "to": seen.status.value,
                            "reason_code": seen.reason_code.value if seen.reason_code else None,
                        },
                    )
                ]
            )
        await uow.commit()
    if changed:
        level = log.info if usable else log.error
        level(
            "external_key_status_changed",
            previous=previous.value,
            status=seen.status.value,
            reason=seen.reason,
            reason_code=seen.reason_code.value if seen.reason_code else None,
        )
    await ctx.changes.publish("purge" if seen.status in _STOPS or config.refused else "status")
    return changed


async def record_inconclusive(ctx: AppContext, config: ExternalKmsConfig, why: str) -> None:
    """A history note that a sync could not tell (ekms too busy); the status is untouched and
    ``last_sync_at`` stays, so the scheduler tries again on its next tick."""
    status = config.external_key_status
    async with ctx.uow() as uow:
        await uow.status.record_change(
            KeyStatusChange(ctx.rng.uuid(), ctx.clock.now(), status, status, why)
        )
        await uow.commit()
