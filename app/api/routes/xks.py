"""/api/v1/xks/stores and /api/v1/xks/keys: the external key store's admin (the XKS proxy
itself is on its own listener, ``app/xks``). Stores and their credentials: ``ekms.admin``;
keys: ``ekms.key_manager``; reading: any admin role."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.deps import Admin, AnyAdminRole, Ctx, KeyManager
from app.api.openapi import problems
from app.api.schemas.xks import (
    XksKeyIn,
    XksKeyListOut,
    XksKeyOut,
    XksKeyUpdate,
    XksStoreIn,
    XksStoreListOut,
    XksStoreOut,
    XksStoreUpdate,
)
from app.api.security import SecuredRoute
from app.application.xks import admin

router = APIRouter(prefix="/api/v1/xks", route_class=SecuredRoute)
StoreId = Annotated[uuid.UUID, Path(description="the store's id")]
KeyId = Annotated[uuid.UUID, Path(description="the key's id (not its external key id)")]
_CHAIN = "The key chain cannot serve (the KEK seals credentials and keys)"


@router.get("/stores", tags=["xks"], summary="List the external key stores")
async def list_stores(ctx: Ctx, _caller: AnyAdminRole) -> XksStoreListOut:
    return XksStoreListOut(items=[XksStoreOut.of(s) for s in await admin.list_stores(ctx)])


@router.post(
    "/stores",
    tags=["xks"],
    summary="Create an external key store (its SigV4 credential is in this answer only)",
    status_code=status.HTTP_201_CREATED,
    responses=problems(409, _409="Name or URI prefix taken, or " + _CHAIN),
)
async def create_store(
    body: XksStoreIn, ctx: Ctx, caller: Admin, response: Response
) -> XksStoreOut:
    store, issued = await admin.create_store(ctx, caller, body.to_input())
    response.headers["Location"] = f"/api/v1/xks/stores/{store.id}"
    return XksStoreOut.of(store, issued)


@router.get(
    "/stores/{store_id}",
    tags=["xks"],
    summary="Read one external key store",
    responses=problems(404),
)
async def get_store(store_id: StoreId, ctx: Ctx, _caller: AnyAdminRole) -> XksStoreOut:
    return XksStoreOut.of(await admin.get_store(ctx, store_id))


@router.patch(
    "/stores/{store_id}",
    tags=["xks"],
    summary="Rotate the store's SigV4 credentials (add a second one, remove the old one), "
    "or change its region",
    responses=problems(404, 409, _409="Two credentials already, or the last one"),
)
async def update_store(
    store_id: StoreId, body: XksStoreUpdate, ctx: Ctx, caller: Admin
) -> XksStoreOut:
    issued = None
    if body.region is not None:
        store = await admin.change_store_region(ctx, caller, store_id, body.region)
    if body.remove_access_key_id is not None:
        store = await admin.remove_store_credential(
            ctx, caller, store_id, body.remove_access_key_id
        )
    if body.add_credential:
        store, issued = await admin.add_store_credential(ctx, caller, store_id)
    if body.remove_access_key_id is None and not body.add_credential and body.region is None:
        store = await admin.get_store(ctx, store_id)
    return XksStoreOut.of(store, issued)


@router.delete(
    "/stores/{store_id}",
    tags=["xks"],
    summary="Delete an external key store and all its keys",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(404),
)
async def delete_store(store_id: StoreId, ctx: Ctx, caller: Admin) -> None:
    await admin.delete_store(ctx, caller, store_id)


@router.get("/keys", tags=["xks"], summary="List the external key store keys")
async def list_keys(ctx: Ctx, _caller: AnyAdminRole) -> XksKeyListOut:
    return XksKeyListOut(items=[XksKeyOut.of(k) for k in await admin.list_keys(ctx)])


@router.post(
    "/keys",
    tags=["xks"],
    summary="Create an AES-256 key in a store (sealed under the KEK, or in the PKCS#11 HSM)",
    status_code=status.HTTP_201_CREATED,
    responses=problems(404, 409, _404="No such store", _409="External key id taken, or " + _CHAIN),
)
async def create_key(body: XksKeyIn, ctx: Ctx, caller: KeyManager, response: Response) -> XksKeyOut:
    key = await admin.create_key(ctx, caller, body.to_input())
    response.headers["Location"] = f"/api/v1/xks/keys/{key.id}"
    return XksKeyOut.of(key)


@router.get("/keys/{key_id}", tags=["xks"], summary="Read one key", responses=problems(404))
async def get_key(key_id: KeyId, ctx: Ctx, _caller: AnyAdminRole) -> XksKeyOut:
    return XksKeyOut.of(await admin.get_key(ctx, key_id))


@router.patch(
    "/keys/{key_id}",
    tags=["xks"],
    summary="Enable or disable a key, change its usage or its authorisation",
    responses=problems(404, 409),
)
async def update_key(key_id: KeyId, body: XksKeyUpdate, ctx: Ctx, caller: KeyManager) -> XksKeyOut:
    return XksKeyOut.of(await admin.update_key(ctx, caller, key_id, body.to_changes()))


@router.delete(
    "/keys/{key_id}",
    tags=["xks"],
    summary="Delete a key: AWS data under it is lost for good",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problems(404),
)
async def delete_key(key_id: KeyId, ctx: Ctx, caller: KeyManager) -> None:
    await admin.delete_key(ctx, caller, key_id)
