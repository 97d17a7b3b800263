"""/api/v1/policies/{id}: one module access policy."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from app.api.deps import Admin, Ctx
from app.api.openapi import NO_CONTENT, problems
from app.api.schemas.policies import PolicyIn, PolicyOut
from app.api.security import SecuredRoute
from app.application.policies import delete_policy, get_policy, update_policy

router = APIRouter(prefix="/api/v1/policies", route_class=SecuredRoute)

PolicyId = Annotated[uuid.UUID, Path(description="the policy's id")]
_404 = problems(404, _404="No such policy (POLICY_NOT_FOUND)")


@router.get("/{policy_id}", tags=["policies"], summary="Read a policy", responses=_404)
async def read(policy_id: PolicyId, ctx: Ctx, _caller: Admin) -> PolicyOut:
    return PolicyOut.of(await get_policy(ctx, policy_id))


@router.put("/{policy_id}", tags=["policies"], summary="Replace a policy", responses=_404)
async def replace(policy_id: PolicyId, body: PolicyIn, ctx: Ctx, caller: Admin) -> PolicyOut:
    return PolicyOut.of(await update_policy(ctx, caller, policy_id, body.to_input()))


@router.delete(
    "/{policy_id}", tags=["policies"], summary="Delete a policy", responses=_404, **NO_CONTENT
)
async def delete(policy_id: PolicyId, ctx: Ctx, caller: Admin) -> None:
    await delete_policy(ctx, caller, policy_id)
