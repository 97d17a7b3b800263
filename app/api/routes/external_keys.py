"""/api/v1/ekms/external-keys: the external keys that wrap the KEK (list, add, remove)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import Admin, AnyAdminRole, Ctx
from app.api.openapi import problems
from app.api.schemas.external_keys import ExternalKeyIn, ExternalKeyItemOut, ExternalKeyListOut
from app.api.security import SecuredRoute
from app.application.external_keys import (
    add_external_key,
    list_external_keys,
    remove_external_key,
)

router = APIRouter(prefix="/api/v1/ekms/external-keys", route_class=SecuredRoute)
PATH = "/api/v1/ekms/external-keys"

KeyId = Annotated[uuid.UUID, Path(description="the external key's id")]


@router.get(
    "",
    tags=["config"],
    summary="List the external keys that wrap the KEK",
    responses=problems(404, _404="Not configured yet (reason NOT_CONFIGURED)"),
)
async def list_keys(ctx: Ctx, _caller: AnyAdminRole) -> ExternalKeyListOut:
    views = await list_external_keys(ctx)
    return ExternalKeyListOut(items=[ExternalKeyItemOut.of_view(v) for v in views])


@router.post(
    "",
    tags=["config"],
    summary="Wrap the current KEK under one more external key",
    description="Probes the round trip (wrap, unwrap, fingerprint) first; writes nothing when "
    "it fails.",
    status_code=status.HTTP_201_CREATED,
    responses=problems(
        404,
        409,
        503,
        _404="Not configured yet (reason NOT_CONFIGURED)",
        _409="The key is not enabled or did not give the KEK back (EXTERNAL_KEY_*), it is "
        "there already (EXTERNAL_KEY_EXISTS), or the chain cannot serve",
        _503="The new key's KMS did not answer",
    ),
)
async def add_key(
    body: ExternalKeyIn, ctx: Ctx, caller: Admin, response: Response
) -> ExternalKeyItemOut:
    view = await add_external_key(ctx, caller, body.to_input())
    response.headers["Location"] = f"{PATH}/{view.key.id}"
    return ExternalKeyItemOut.of_view(view)


@router.delete(
    "/{key_id}",
    tags=["config"],
    summary="Remove one external key (not the last)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(
        404,
        409,
        _404="No such key (EXTERNAL_KEY_NOT_FOUND) or not configured",
        _409="It is the last key (LAST_EXTERNAL_KEY)",
    ),
)
async def remove_key(key_id: KeyId, ctx: Ctx, caller: Admin) -> None:
    await remove_external_key(ctx, caller, key_id)
