"""/api/v1/modules: crypto modules, their key versions and their access policies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response, status

from app.api.deps import Admin, AnyAdminRole, Ctx, KeyManager
from app.api.openapi import problems
from app.api.schemas.modules import KeyActionIn, KeyVersionOut, ModuleIn, ModuleOut, ModulePatch
from app.api.schemas.policies import ExplainIn, ExplainOut, PolicyIn, PolicyOut
from app.api.security import SecuredRoute
from app.application.modules import (
    KeyAction,
    change_key_state,
    create_module,
    get_module,
    list_module_keys,
    list_modules,
    rotate_module_key,
    update_module,
)
from app.application.policies import create_policy, explain_access, list_policies

router = APIRouter(prefix="/api/v1/modules", route_class=SecuredRoute)

ModuleName = Annotated[str, Path(max_length=255, description="the module's name")]
Version = Annotated[int, Path(ge=1, le=2**32 - 1, description="a key version")]
_MODULE_404 = problems(404, _404="No such module (MODULE_NOT_FOUND)")
_MODULE_404_TEXT = _MODULE_404[404]["description"]


@router.get("", tags=["modules"], summary="List crypto modules")
async def list_all(ctx: Ctx, _caller: AnyAdminRole) -> list[ModuleOut]:
    return [ModuleOut.of(m) for m in await list_modules(ctx)]


@router.post(
    "",
    tags=["modules"],
    summary="Create a module with its first key version",
    status_code=status.HTTP_201_CREATED,
    responses=problems(
        404,
        409,
        422,
        _404="Not configured yet (NOT_CONFIGURED)",
        _409="The name is taken (ALREADY_EXISTS) or the key chain cannot serve",
        _422="Invalid fields, or external_wrap=false without a local root key in this process",
    ),
)
async def create(body: ModuleIn, ctx: Ctx, caller: Admin, response: Response) -> ModuleOut:
    module = await create_module(ctx, caller, body.to_input())
    response.headers["Location"] = f"{router.prefix}/{module.name}"
    return ModuleOut.of(module)


@router.get("/{name}", tags=["modules"], summary="Read a module", responses=_MODULE_404)
async def read(name: ModuleName, ctx: Ctx, _caller: AnyAdminRole) -> ModuleOut:
    return ModuleOut.of(await get_module(ctx, name))


@router.patch(
    "/{name}",
    tags=["modules"],
    summary="Update a module's description, default access, state or external wrap",
    responses=problems(
        404,
        409,
        422,
        _404=_MODULE_404_TEXT,
        _409="A published module cannot go back to draft (CONFLICT), a concurrent update "
        "(CONCURRENT_UPDATE), or external_wrap changed while the external key chain cannot "
        "serve (EXTERNAL_KEY_*, LOCAL_KEK_UNAVAILABLE)",
        _422="external_wrap=false without a local root key in this process",
    ),
)
async def patch(name: ModuleName, body: ModulePatch, ctx: Ctx, caller: Admin) -> ModuleOut:
    module = await update_module(
        ctx,
        caller,
        name,
        description=body.description,
        default_access=body.default_access,
        state=body.state,
        automation=body.automation(),
        external_wrap=body.external_wrap,
    )
    return ModuleOut.of(module)


@router.get(
    "/{name}/keys", tags=["keys"], summary="List a module's key versions", responses=_MODULE_404
)
async def list_keys(name: ModuleName, ctx: Ctx, _caller: AnyAdminRole) -> list[KeyVersionOut]:
    return [KeyVersionOut.of(name, k) for k in await list_module_keys(ctx, name)]


@router.post(
    "/{name}/keys/rotate",
    tags=["keys"],
    summary="New active key version; the previous one decrypts only",
    status_code=status.HTTP_201_CREATED,
    responses=problems(
        404,
        409,
        _404=_MODULE_404_TEXT,
        _409="The key chain cannot serve (EXTERNAL_KEY_*, NOT_CONFIGURED)",
    ),
)
async def rotate(name: ModuleName, ctx: Ctx, caller: KeyManager) -> KeyVersionOut:
    return KeyVersionOut.of(name, await rotate_module_key(ctx, caller, name))


@router.post(
    "/{name}/keys/{version}/{action}",
    tags=["keys"],
    summary="Revoke, suspend, resume or destroy a key version",
    description=(
        'Revoking takes a body `{"reason": ...}` (required); the other actions take it '
        "optionally. The reason is kept on the version and audited. "
        "Revoking the active version creates a new active one in the same transaction. "
        "Destroy erases the key material: ciphertexts under that version are lost."
    ),
    responses=problems(
        404,
        409,
        422,
        _404="No such module or key version (KEY_VERSION_NOT_FOUND)",
        _409="The transition is not allowed from the current state (INVALID_KEY_TRANSITION)",
        _422="A revoke without a reason, or a reason that is blank, too long or not printable",
    ),
)
async def change_state(
    name: ModuleName,
    version: Version,
    action: KeyAction,
    ctx: Ctx,
    caller: KeyManager,
    body: Annotated[KeyActionIn | None, Body()] = None,
) -> KeyVersionOut:
    reason = body.reason if body is not None else None
    key = await change_key_state(ctx, caller, name, version, action, reason)
    return KeyVersionOut.of(name, key)


@router.get(
    "/{name}/policies",
    tags=["policies"],
    summary="List a module's access policies",
    responses=_MODULE_404,
)
async def list_module_policies(name: ModuleName, ctx: Ctx, _caller: Admin) -> list[PolicyOut]:
    return [PolicyOut.of(p) for p in await list_policies(ctx, name)]


@router.post(
    "/{name}/policies",
    tags=["policies"],
    summary="Add an access policy to a module",
    status_code=status.HTTP_201_CREATED,
    responses=_MODULE_404,
)
async def add_policy(
    name: ModuleName, body: PolicyIn, ctx: Ctx, caller: Admin, response: Response
) -> PolicyOut:
    policy = await create_policy(ctx, caller, name, body.to_input())
    response.headers["Location"] = f"/api/v1/policies/{policy.id}"
    return PolicyOut.of(policy)


@router.post(
    "/{name}/policies/explain",
    tags=["policies"],
    summary="Explain the access decision for a subject, its roles and an operation",
    description="A dry run of the module's access policies: nothing is called, changed or audited.",
    responses=_MODULE_404,
)
async def explain_policies(
    name: ModuleName, body: ExplainIn, ctx: Ctx, _caller: Admin
) -> ExplainOut:
    return ExplainOut.of(await explain_access(ctx, name, body.caller(), body.operation))
