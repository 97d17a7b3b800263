"""The external key status sync: read the key's state, record it, rewrap after AWS rotation.

moto (and a KMS behind a proxy) may keep answering Encrypt/Decrypt for a disabled key, so
ekms never infers the state from those calls: it asks DescribeKey and ListKeyRotations.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from app.application.configuration import require_config
from app.application.context import AppContext
from app.application.kek import rewrap_ekek
from app.application.keychain import external_ref
from app.domain.alerts import KEY_UNUSABLE, Alert, KeyStatusChange
from app.domain.audit import AuditResult
from app.domain.errors import EkmsError
from app.domain.values import SYSTEM, Caller, ExternalKeyStatus

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SyncReport:
    status: ExternalKeyStatus
    previous: ExternalKeyStatus
    changed: bool
    reason: str | None
    rewrapped: bool
    rotation_marker: str | None


async def sync_external_key(ctx: AppContext, caller: Caller = SYSTEM) -> SyncReport:
    async with ctx.uow() as uow:
        config = await require_config(uow)
        ekek = await uow.instance_keys.get_active()
    kms = ctx.kms.connect(external_ref(config))
    description = await kms.describe()
    previous = config.external_key_status
    now = ctx.clock.now()
    changed = config.record_status(
        description.status, now, reason=description.reason, deletion_date=description.deletion_date
    )
    usable = description.status is ExternalKeyStatus.ENABLED
    async with ctx.uow() as uow:
        await uow.config.save(config)
        if changed:
            await uow.status.record_change(
                KeyStatusChange(
                    ctx.rng.uuid(), now, previous, description.status, description.reason
                )
            )
        if usable:
            await uow.status.close_alerts(KEY_UNUSABLE, now)
        else:
            why = f": {description.reason}" if description.reason else ""
            await uow.status.open_alert(
                Alert(
                    ctx.rng.uuid(),
                    KEY_UNUSABLE,
                    f"the external key is {description.status.value}{why}",
                    now,
                )
            )
        if changed:
            await uow.audit.append(
                [
                    ctx.event(
                        caller,
                        "ekms.status.change",
                        result=AuditResult.SUCCESS,
                        target=config.key_id,
                        reason=description.reason,
                        details={"from": previous.value, "to": description.status.value},
                    )
                ]
            )
        await uow.commit()
    if changed:
        level = log.info if description.status is ExternalKeyStatus.ENABLED else log.error
        level(
            "external_key_status_changed",
            previous=previous.value,
            status=description.status.value,
            reason=description.reason,
        )
    stops = description.status in (
        ExternalKeyStatus.DISABLED,
        ExternalKeyStatus.PENDING_DELETION,
        ExternalKeyStatus.DELETED,
    )
    await ctx.changes.publish("purge" if stops else "status")

    rewrapped = False
    marker = ekek.rotation_marker if ekek else None
    if description.status is ExternalKeyStatus.ENABLED and ekek is not None and config.active:
        try:
            rotation = await kms.rotation_state()
        except EkmsError as exc:
            log.warning("rotation_check_failed", reason=exc.reason.value)
        else:
            if rotation.marker != ekek.rotation_marker:
                result = await rewrap_ekek(ctx, caller)
                rewrapped, marker = True, result.new_marker
    return SyncReport(
        status=description.status,
        previous=previous,
        changed=changed,
        reason=description.reason,
        rewrapped=rewrapped,
        rotation_marker=marker,
    )
