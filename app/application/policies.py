"""Use cases for module access policies (MAPs)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from app.application.context import AppContext
from app.application.lookups import require_module
from app.application.ports import UnitOfWork
from app.domain.errors import NotFound, Reason
from app.domain.justification import NO_RULE, Justification, JustificationRule
from app.domain.policy import Decision, ModuleAccessPolicy, evaluate, validate_policy_fields
from app.domain.values import AccessResult, Caller, Operation, TargetType


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """What a caller may set on a module access policy."""

    target_type: TargetType
    target: str
    operations: frozenset[Operation]
    result: AccessResult
    active: bool = True
    description: str = ""
    justification: JustificationRule = NO_RULE


async def _require_policy(uow: UnitOfWork, policy_id: uuid.UUID) -> ModuleAccessPolicy:
    policy = await uow.policies.get(policy_id)
    if policy is None:
        raise NotFound(f"policy {policy_id} does not exist", reason=Reason.POLICY_NOT_FOUND)
    return policy


def _summary(policy: ModuleAccessPolicy) -> dict[str, object]:
    return {
        "policy_id": str(policy.id),
        "target_type": policy.target_type.value,
        "target": policy.target,
        "operations": sorted(op.value for op in policy.operations),
        "result": policy.result.value,
        "active": policy.active,
        "require_justification": policy.justification.required,
        "justification_codes": sorted(policy.justification.codes),
    }


async def _commit_audited(
    ctx: AppContext, uow: UnitOfWork, caller: Caller, action: str, policy: ModuleAccessPolicy
) -> None:
    module = await uow.modules.get(policy.module_id)
    module_name = module.name if module else None
    event = ctx.event(caller, action, module=module_name, details=_summary(policy))
    await ctx.commit_audited(uow, event)


async def create_policy(
    ctx: AppContext, caller: Caller, module_name: str, data: PolicyInput
) -> ModuleAccessPolicy:
    """Add a module access policy; audited."""
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        module = await require_module(uow, module_name)
        policy = ModuleAccessPolicy(
            id=ctx.rng.uuid(),
            module_id=module.id,
            target_type=data.target_type,
            target=data.target,
            operations=data.operations,
            result=data.result,
            created_at=now,
            updated_at=now,
            active=data.active,
            description=data.description,
            justification=data.justification,
        )
        await uow.policies.add(policy)
        event = ctx.event(caller, "policy.create", module=module_name, details=_summary(policy))
        await ctx.commit_audited(uow, event)
    await ctx.changes.publish("policy")
    return policy


async def list_policies(ctx: AppContext, module_name: str) -> Sequence[ModuleAccessPolicy]:
    """A module's access policies."""
    async with ctx.uow() as uow:
        module = await require_module(uow, module_name)
        return await uow.policies.list_for_module(module.id)


async def get_policy(ctx: AppContext, policy_id: uuid.UUID) -> ModuleAccessPolicy:
    """One policy, or ``NotFound(POLICY_NOT_FOUND)``."""
    async with ctx.uow() as uow:
        return await _require_policy(uow, policy_id)


async def update_policy(
    ctx: AppContext, caller: Caller, policy_id: uuid.UUID, data: PolicyInput
) -> ModuleAccessPolicy:
    """Change a policy's mutable fields; audited."""
    validate_policy_fields(
        data.target, data.operations, data.description, data.result, data.justification
    )
    async with ctx.uow() as uow:
        policy = await _require_policy(uow, policy_id)
        policy.target_type = data.target_type
        policy.target = data.target
        policy.operations = data.operations
        policy.result = data.result
        policy.active = data.active
        policy.description = data.description
        policy.justification = data.justification
        policy.updated_at = ctx.clock.now()
        await uow.policies.save(policy)
        await _commit_audited(ctx, uow, caller, "policy.update", policy)
    await ctx.changes.publish("policy")
    return policy


async def delete_policy(ctx: AppContext, caller: Caller, policy_id: uuid.UUID) -> None:
    """Remove a policy; audited."""
    async with ctx.uow() as uow:
        policy = await _require_policy(uow, policy_id)
        await uow.policies.delete(policy_id)
        await _commit_audited(ctx, uow, caller, "policy.delete", policy)
    await ctx.changes.publish("policy")


@dataclass(frozen=True, slots=True)
class AccessExplanation:
    """A dry-run access decision on a module, with every policy it evaluated."""

    decision: Decision
    default_access: AccessResult
    policies: tuple[ModuleAccessPolicy, ...]
    justification: Justification | None = None  # what the dry-run call sent

    def effect(self, policy: ModuleAccessPolicy) -> str:
        """What a policy did: ``decided``, ``unjustified`` (matched, but the call lacks the
        justification it requires: if it decided, it denied), ``outweighed`` (matched, another
        decided), ``inactive`` or ``no_match``."""
        matched = policy.id in self.decision.matched
        if matched and not policy.justification.met_by(self.justification):
            return "unjustified"
        if policy.id == self.decision.decided_by:
            return "decided"
        if matched:
            return "outweighed"
        return "no_match" if policy.active else "inactive"


async def explain_access(
    ctx: AppContext, module_name: str, caller: Caller, operation: Operation
) -> AccessExplanation:
    """How a module's policies decide ``operation`` for ``caller``; nothing is changed."""
    async with ctx.uow() as uow:
        module = await require_module(uow, module_name)
        policies = tuple(await uow.policies.list_for_module(module.id))
    decision = evaluate(policies, caller, operation, module.default_access)
    return AccessExplanation(decision, module.default_access, policies, caller.justification)
