"""/api/v1/field-configs: which module encrypts which ``table.column``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import Admin, Ctx
from app.api.openapi import NO_CONTENT, problems
from app.api.schemas.fields import FieldConfigIn, FieldConfigOut, FieldConfigPatch
from app.api.security import SecuredRoute
from app.application.field_configs import (
    create_field_config,
    delete_field_config,
    get_field_config,
    list_field_configs,
    update_field_config,
)

router = APIRouter(prefix="/api/v1/field-configs", route_class=SecuredRoute)

ConfigId = Annotated[uuid.UUID, Path(description="the field configuration's id")]
_404 = problems(404, _404="No such field configuration (FIELD_CONFIG_NOT_FOUND) or module")


@router.get("", tags=["field-configs"], summary="List field configurations")
async def list_all(ctx: Ctx, _caller: Admin) -> list[FieldConfigOut]:
    return [FieldConfigOut.of(c) for c in await list_field_configs(ctx)]


@router.post(
    "",
    tags=["field-configs"],
    summary="Configure a field",
    status_code=status.HTTP_201_CREATED,
    responses=problems(
        404, 409, _404="No such module (MODULE_NOT_FOUND)", _409="The field is configured already"
    ),
)
async def create(
    body: FieldConfigIn, ctx: Ctx, caller: Admin, response: Response
) -> FieldConfigOut:
    config = await create_field_config(ctx, caller, body.to_input())
    response.headers["Location"] = f"{router.prefix}/{config.id}"
    return FieldConfigOut.of(config)


@router.get(
    "/{config_id}", tags=["field-configs"], summary="Read a field configuration", responses=_404
)
async def read(config_id: ConfigId, ctx: Ctx, _caller: Admin) -> FieldConfigOut:
    return FieldConfigOut.of(await get_field_config(ctx, config_id))


@router.patch(
    "/{config_id}",
    tags=["field-configs"],
    summary="Re-point a field at another module, or (de)activate it",
    responses=_404,
)
async def patch(
    config_id: ConfigId, body: FieldConfigPatch, ctx: Ctx, caller: Admin
) -> FieldConfigOut:
    config = await update_field_config(
        ctx, caller, config_id, module=body.module, active=body.active
    )
    return FieldConfigOut.of(config)


@router.delete(
    "/{config_id}",
    tags=["field-configs"],
    summary="Delete a field configuration",
    responses=_404,
    **NO_CONTENT,
)
async def delete(config_id: ConfigId, ctx: Ctx, caller: Admin) -> None:
    await delete_field_config(ctx, caller, config_id)
