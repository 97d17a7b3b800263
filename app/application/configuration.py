"""Use cases for the one EKMS configuration: configure, update, test, read status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.application.context import AppContext
from app.application.kek_mint import fresh_versions, mint_kek
from app.application.lookups import external_ref, require_config, require_enabled
from app.application.module_wrap import ModuleWrapping, module_wrappings
from app.domain.alerts import Alert
from app.domain.ekms_config import DEFAULT_SYNC_INTERVAL, ExternalInstanceKey, ExternalKmsConfig
from app.domain.errors import AlreadyExists, EkmsError, KeyUnavailable, Reason
from app.domain.external_keys import ExternalKey
from app.domain.keys import KeyEncryptionKey
from app.domain.values import Caller, ExternalKeyStatus, KmsProvider, RevocationPolicy


@dataclass(frozen=True, slots=True)
class ConfigInput:
    """What a caller may set when creating the configuration."""

    provider: KmsProvider
    key_id: str
    region: str | None = None
    sync_interval: timedelta = DEFAULT_SYNC_INTERVAL
    activate: bool = True
    revocation_policy: RevocationPolicy = RevocationPolicy.ANY


def kms_endpoint(ctx: AppContext, config: ExternalKmsConfig) -> str:
    """Where this process sends the configuration's KMS calls: a server setting, never a
    request's (status shows it, so an operator sees where the KEK is wrapped)."""
    return ctx.kms.endpoint(external_ref(config))


async def get_config(ctx: AppContext) -> ExternalKmsConfig:
    """The configuration, or ``NotFound(NOT_CONFIGURED)``."""
    async with ctx.uow() as uow:
        return await require_config(uow)


async def configure_ekms(ctx: AppContext, caller: Caller, data: ConfigInput) -> ExternalKmsConfig:
    """Create the one configuration; when activating, generate the KEK and wrap it externally."""
    now = ctx.clock.now()
    config = ExternalKmsConfig(
        id=ctx.rng.uuid(),
        instance_id=ctx.chain.instance_id,
        provider=data.provider,
        key_id=data.key_id,
        region=data.region,
        sync_interval=data.sync_interval,
        created_at=now,
        updated_at=now,
        revocation_policy=data.revocation_policy,
    )
    async with ctx.uow() as uow:
        if await uow.config.get() is not None:
            raise AlreadyExists(
                "this instance already has its EKMS configuration; update it instead",
                reason=Reason.ALREADY_CONFIGURED,
            )
    ekek, kek = (await _new_kek(ctx, config)) if data.activate else (None, None)
    async with ctx.uow() as uow:
        await uow.config.add(config)
        await uow.external_keys.add(ExternalKey.first_of(config, config.id, 0))
        renewed: list[str] = []
        if ekek is not None and kek is not None:
            ekek.external_key_id = config.id
            await uow.instance_keys.add(ekek)
            renewed = await fresh_versions(ctx, uow, kek)
        details: dict[str, object] = {"provider": config.provider.value, "active": config.active}
        if renewed:
            details["fresh_key_versions"] = renewed
        await uow.audit.append(
            [ctx.event(caller, "ekms.configure", target=config.key_id, details=details)]
        )
        await uow.commit()
    if kek is not None:
        ctx.chain.remember_kek(kek)
    await ctx.changes.publish("config")
    return config


async def update_ekms_config(
    ctx: AppContext, caller: Caller, changes: dict[str, object], *, activate: bool = False
) -> ExternalKmsConfig:
    """Change mutable fields (critical ones only before activation); optionally activate."""
    async with ctx.uow() as uow:
        config = await require_config(uow)
    changed = config.update(changes, ctx.clock.now())
    ekek, kek = (None, None)
    if activate and not config.active:
        ekek, kek = await _new_kek(ctx, config)
        changed.append("active")
    if not changed:
        return config
    async with ctx.uow() as uow:
        await uow.config.save(config)
        if ekek is not None and kek is not None:
            await uow.instance_keys.add(ekek)
            if renewed := await fresh_versions(ctx, uow, kek):
                changed.append(f"fresh key versions: {', '.join(renewed)}")
        await uow.audit.append(
            [
                ctx.event(
                    caller, "ekms.config.update", target=config.key_id, details={"changed": changed}
                )
            ]
        )
        await uow.commit()
    if kek is not None:
        ctx.chain.remember_kek(kek)
    await ctx.changes.publish("config")
    return config


async def _new_kek(
    ctx: AppContext, config: ExternalKmsConfig
) -> tuple[ExternalInstanceKey, KeyEncryptionKey]:
    """Generate a KEK and wrap it under the external key, which must be Enabled."""
    kms = ctx.kms.connect(external_ref(config))
    require_enabled(await kms.describe())
    ekek, kek, _ = await mint_kek(ctx, kms)
    config.active = True
    config.record_status(ExternalKeyStatus.ENABLED, ekek.created_at)
    return ekek, kek


@dataclass(frozen=True, slots=True)
class EkmsStatus:
    """The key chain as this replica sees it, for /ekms/status."""

    configured: bool
    active: bool
    provider: KmsProvider | None
    key_id: str | None
    external_key_status: ExternalKeyStatus
    status_reason: str | None
    deletion_date: datetime | None
    last_sync_at: datetime | None
    unavailable_since: datetime | None
    serving: bool
    serving_reason: str | None
    ekek_key_name: str | None
    ekek_rotation_marker: str | None
    ekek_rewrapped_at: datetime | None
    kek_fingerprint: str | None
    kek_created_at: datetime | None
    open_alerts: tuple[Alert, ...] = ()
    kms_endpoint: str | None = None
    status_reason_code: str | None = None
    revocation_policy: RevocationPolicy | None = None
    keys: tuple[tuple[ExternalKey, ExternalInstanceKey | None], ...] = ()  # the first first
    modules: tuple[ModuleWrapping, ...] = ()  # which depend on the external key, by name
    local_kek_fingerprint: str | None = None  # None: no module ever had external_wrap=false


async def get_status(ctx: AppContext) -> EkmsStatus:
    """The chain as this replica sees it; reads through the snapshot, so it is cheap."""
    snap = await ctx.chain.snapshot()
    config, ekek = snap.config, snap.ekek
    serving_reason: str | None = None
    try:
        if config is None:
            raise KeyUnavailable("ekms is not configured", reason=Reason.NOT_CONFIGURED)
        ctx.chain.check_serving(snap, None)
        serving = True
    except EkmsError as exc:
        serving, serving_reason = False, exc.reason.value
    return EkmsStatus(
        configured=config is not None,
        active=bool(config and config.active),
        provider=config.provider if config else None,
        key_id=config.key_id if config else None,
        kms_endpoint=kms_endpoint(ctx, config) if config else None,
        external_key_status=config.external_key_status if config else ExternalKeyStatus.UNKNOWN,
        status_reason=config.status_reason if config else None,
        status_reason_code=(
            config.status_reason_code.value if config and config.status_reason_code else None
        ),
        deletion_date=config.deletion_date if config else None,
        last_sync_at=config.last_sync_at if config else None,
        unavailable_since=config.unavailable_since if config else None,
        serving=serving,
        serving_reason=serving_reason,
        ekek_key_name=ekek.kms_key_arn if ekek else None,
        ekek_rotation_marker=ekek.rotation_marker if ekek else None,
        ekek_rewrapped_at=ekek.rewrapped_at if ekek else None,
        kek_fingerprint=ekek.fingerprint if ekek else None,
        kek_created_at=ekek.created_at if ekek else None,
        open_alerts=snap.open_alerts,
        revocation_policy=config.revocation_policy if config else None,
        keys=tuple((k, snap.wraps.get(k.id)) for k in snap.keys),
        modules=module_wrappings(ctx, snap),
        local_kek_fingerprint=snap.local_kek.fingerprint if snap.local_kek else None,
    )
