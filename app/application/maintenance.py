"""What the scheduler runs on the leader replica each tick: the status sync when it is due,
and key lifecycle automation. Each automatic action is audited with the replica that ran it.

The GCM nonce budget does not depend on this: the encrypt path refuses at the limit itself
(``app.application.budget``). The scheduler rotates well before (7/8 of the limit), opens the
key-usage alert if the data path has not yet, and closes it once the version is not active.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from app.application.context import AppContext
from app.application.modules import KeyAction, change_key_state, rotate_module_key
from app.application.sync_flight import sync_or_join
from app.domain.alerts import Alert
from app.domain.errors import EkmsError
from app.domain.module import (
    GCM_SAFE_LIMIT,
    CryptoModule,
    ModuleKey,
    key_usage_alert_kind,
    parse_key_usage_alert_kind,
)
from app.domain.values import Algorithm, Caller, KeyState, ModuleState

log = structlog.get_logger(__name__)


@dataclass
class TickReport:
    """What one scheduler tick ran and which jobs failed."""

    ran: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def scheduler_caller(replica: str) -> Caller:
    """The audit identity of the scheduler on ``replica``."""
    return Caller(subject=f"system:scheduler@{replica}", roles=frozenset({"ekms.system"}))


async def run_due_jobs(ctx: AppContext, replica: str) -> TickReport:
    """Run the status sync when due and the lifecycle automation; audited."""
    report = TickReport()
    caller = scheduler_caller(replica)
    async with ctx.uow() as uow:
        config = await uow.config.get()
    if config is None or not config.active:
        return report
    now = ctx.clock.now()
    if config.last_sync_at is None or now - config.last_sync_at >= config.sync_interval:
        try:
            await sync_or_join(ctx, caller)
            report.ran.append("sync")
        except EkmsError as exc:
            report.errors.append(f"sync:{exc.reason.value}")
    try:
        report.ran.extend(await automate_key_lifecycle(ctx, caller))
    except EkmsError as exc:
        report.errors.append(f"lifecycle:{exc.reason.value}")
    if report.ran:
        async with ctx.uow() as uow:
            await uow.audit.append(
                [
                    ctx.event(
                        caller, "scheduler.tick", details={"ran": report.ran, "replica": replica}
                    )
                ]
            )
            await uow.commit()
    return report


async def automate_key_lifecycle(ctx: AppContext, caller: Caller) -> list[str]:
    """Rotate by age or by the GCM nonce budget; destroy old Deactivated versions if enabled."""
    done: list[str] = []
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        modules = [m for m in await uow.modules.list() if m.state is ModuleState.PUBLISHED]
        keys = {m.id: await uow.keys.list_for_module(m.id) for m in modules}
    await _reconcile_usage_alerts(ctx, modules, keys)
    for module in modules:
        active = next((k for k in keys[module.id] if k.state is KeyState.ACTIVE), None)
        if active is not None:
            aged = (
                module.rotation_period is not None
                and active.activated_at is not None
                and now - active.activated_at >= module.rotation_period
            )
            nonce_bound = module.algorithm is Algorithm.AES_256_GCM
            if nonce_bound and active.near_nonce_limit:
                log.warning(
                    "key_version_near_nonce_limit",
                    module=module.name,
                    version=active.version,
                    used=active.usage_mark,
                    limit=GCM_SAFE_LIMIT,
                )
            if aged or (nonce_bound and active.due_for_nonce_rotation):
                why = "age" if aged else "nonce_budget"
                await rotate_module_key(ctx, caller, module.name, action=f"key.auto_rotate.{why}")
                done.append(f"rotate:{module.name}:{why}")
        if module.destroy_deactivated_after is not None:
            for key in keys[module.id]:
                if (
                    key.state is KeyState.DEACTIVATED
                    and key.deactivated_at is not None
                    and now - key.deactivated_at >= module.destroy_deactivated_after
                ):
                    await change_key_state(ctx, caller, module.name, key.version, KeyAction.DESTROY)
                    done.append(f"destroy:{module.name}:{key.version}")
    return done


async def _reconcile_usage_alerts(
    ctx: AppContext, modules: list[CryptoModule], keys: dict[uuid.UUID, Sequence[ModuleKey]]
) -> None:
    """Open the key-usage alert of every active GCM version past the warning mark; close the
    ones whose version is no longer active (rotated, or its module gone or unpublished)."""
    now = ctx.clock.now()
    due: dict[str, str] = {}
    for module in modules:
        active = next((k for k in keys[module.id] if k.state is KeyState.ACTIVE), None)
        if module.algorithm is Algorithm.AES_256_GCM and active and active.near_nonce_limit:
            kind = key_usage_alert_kind(module.id, active.version)
            due[kind] = (
                f"key version {active.version} of module {module.name!r} has used "
                f"{min(active.usage_mark, GCM_SAFE_LIMIT) / GCM_SAFE_LIMIT:.0%} of its 2^32 "
                "AES-GCM encryptions; rotate the module key (encrypts are refused at the limit)"
            )
    changed = False
    async with ctx.uow() as uow:
        open_kinds = {a.kind for a in await uow.status.open_alerts()}
        for kind in open_kinds:
            if parse_key_usage_alert_kind(kind) is not None and kind not in due:
                changed = bool(await uow.status.close_alerts(kind, now)) or changed
        for kind, message in due.items():
            if kind not in open_kinds:
                alert = Alert(ctx.rng.uuid(), kind, message, now)
                changed = await uow.status.open_alert(alert) or changed
        await uow.commit()
    if changed:
        await ctx.changes.publish("status")
