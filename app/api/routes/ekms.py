"""/api/v1/ekms: the configuration, its probe, the key chain status, sync and KEK rotation
(the external chain's and the local one's)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import Admin, AnyAdminRole, Ctx, KeyManager, Services
from app.api.openapi import problems
from app.api.schemas.config import ConfigIn, ConfigOut, StatusOut, SyncOut
from app.api.schemas.config_probe import ProbeOut
from app.api.schemas.kek import ConfigEndedOut, KekRotationOut
from app.api.security import SecuredRoute
from app.application.audit_checkpoints import current_signing_key
from app.application.config_end import end_ekms_config
from app.application.config_probe import probe_ekms_config
from app.application.configuration import (
    configure_ekms,
    get_config,
    get_status,
    kms_endpoint,
    update_ekms_config,
)
from app.application.context import AppContext
from app.application.kek import rotate_kek
from app.application.local_kek_rotation import rotate_local_kek
from app.application.sync_flight import sync_or_join
from app.domain.ekms_config import ExternalKmsConfig
from app.domain.errors import NotFound, Reason

router = APIRouter(prefix="/api/v1/ekms", route_class=SecuredRoute)
CONFIG_PATH = "/api/v1/ekms/config"


@router.get(
    "/config",
    tags=["config"],
    summary="Read the EKMS configuration",
    responses=problems(404, _404="Not configured yet (reason NOT_CONFIGURED)"),
)
async def read_config(ctx: Ctx, _caller: Admin) -> ConfigOut:
    return _out(ctx, await get_config(ctx))


@router.put(
    "/config",
    tags=["config"],
    summary="Create the configuration, or update its mutable fields",
    responses={
        201: {"model": ConfigOut, "description": "Created (and activated unless activate=false)"},
        **problems(
            409,
            _409="A critical field changed once active (IMMUTABLE_FIELD), a concurrent create "
            "(ALREADY_CONFIGURED), or the external key is not enabled (EXTERNAL_KEY_*)",
        ),
    },
)
async def put_config(
    body: ConfigIn, ctx: Ctx, services: Services, caller: Admin, response: Response
) -> ConfigOut:
    try:
        await get_config(ctx)
    except NotFound as exc:
        if exc.reason is not Reason.NOT_CONFIGURED:
            raise
        default_minutes = services.sync_interval_minutes
        config = await configure_ekms(ctx, caller, body.to_input(default_minutes))
        response.status_code = 201
        response.headers["Location"] = CONFIG_PATH
        return _out(ctx, config)
    config = await update_ekms_config(ctx, caller, body.changes(), activate=body.activate)
    return _out(ctx, config)


@router.delete(
    "/config",
    tags=["config"],
    summary="End the configuration once every external key is deleted",
    description=(
        "`confirm` must be this instance's id. Key versions under the old KEK are marked lost "
        "(old ciphertexts answer KEY_VERSION_LOST), the EKEKs and external keys removed, in one "
        "transaction; a new PUT then starts a fresh chain and gives each module a fresh version."
    ),
    responses=problems(
        404,
        409,
        _404="Not configured (reason NOT_CONFIGURED)",
        _409="An external key is not deleted (reason EXTERNAL_KEY_NOT_DELETED)",
    ),
)
async def end_config(
    ctx: Ctx, caller: Admin, confirm: Annotated[str, Query(min_length=1, max_length=255)]
) -> ConfigEndedOut:
    return ConfigEndedOut.of(await end_ekms_config(ctx, caller, confirm))


@router.post(
    "/config/test",
    tags=["config"],
    summary="Wrap and unwrap a probe key through the external KMS",
    description="Persists nothing but an audit event. `ok=false` says why in `reason`.",
    responses=problems(404, _404="Not configured yet (reason NOT_CONFIGURED)"),
)
async def test_config(ctx: Ctx, caller: Admin) -> ProbeOut:
    return ProbeOut.of(await probe_ekms_config(ctx, caller))


@router.get(
    "/status",
    tags=["status"],
    summary="Key chain status: external key, KEK, open alerts",
)
async def read_status(ctx: Ctx, _caller: AnyAdminRole) -> StatusOut:
    signing_key = await current_signing_key(ctx)
    return StatusOut.of(await get_status(ctx), signing_key, ctx.audit.state())


@router.post(
    "/sync",
    tags=["status"],
    summary="Run the external key status sync and rotation check now",
    description=(
        "A sync asked for while one runs (the scheduler's, another caller's, or another "
        "replica's) joins it and answers its result."
    ),
    responses=problems(404, _404="Not configured yet (reason NOT_CONFIGURED)"),
)
async def sync_now(ctx: Ctx, caller: KeyManager) -> SyncOut:
    return SyncOut.of(await sync_or_join(ctx, caller))


@router.post(
    "/kek/rotate",
    tags=["status"],
    summary="Rotate the KEK: every module key rewrapped, field ciphertexts untouched",
    responses=problems(
        404,
        409,
        _404="Not configured yet (reason NOT_CONFIGURED)",
        _409="The key chain cannot serve (EXTERNAL_KEY_*, NOT_CONFIGURED) or a concurrent rotation",
    ),
)
async def rotate_kek_now(ctx: Ctx, caller: KeyManager) -> KekRotationOut:
    return KekRotationOut.of(await rotate_kek(ctx, caller))


@router.post(
    "/local-kek/rotate",
    tags=["status"],
    summary="Rotate the local KEK: the keys of external_wrap=false modules rewrapped",
    responses=problems(
        409,
        422,
        _409="No local KEK yet, it cannot be unwrapped (LOCAL_KEK_UNAVAILABLE), or a "
        "concurrent change (CONCURRENT_UPDATE)",
        _422="This process has no protector for the local KEK (field external_wrap)",
    ),
)
async def rotate_local_kek_now(ctx: Ctx, caller: KeyManager) -> KekRotationOut:
    return KekRotationOut.of(await rotate_local_kek(ctx, caller))


def _out(ctx: AppContext, config: ExternalKmsConfig) -> ConfigOut:
    return ConfigOut.of(config, kms_endpoint(ctx, config))
