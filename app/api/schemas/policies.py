"""Bodies of /modules/{name}/policies and /policies/{id}."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import InputModel
from app.application.policies import AccessExplanation, PolicyInput
from app.domain.policy import ModuleAccessPolicy
from app.domain.values import AccessResult, Operation, TargetType


class PolicyIn(InputModel):
    """A module access policy: who (a role or a subject), which operations, what result."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "target_type": "role",
                    "target": "payroll",
                    "operations": ["encrypt", "decrypt"],
                    "result": "track",
                    "description": "the payroll service",
                }
            ]
        }
    )

    target_type: TargetType
    target: str = Field(min_length=1, max_length=256, description="a role name or a token subject")
    operations: list[Operation] = Field(min_length=1, max_length=len(Operation))
    result: AccessResult = Field(
        description="track grants (and records), reject denies unless something grants, "
        "strict_reject always denies"
    )
    active: bool = True
    description: str = Field(default="", max_length=1024)

    def to_input(self) -> PolicyInput:
        return PolicyInput(
            target_type=self.target_type,
            target=self.target,
            operations=frozenset(self.operations),
            result=self.result,
            active=self.active,
            description=self.description,
        )


class PolicyOut(BaseModel):
    id: uuid.UUID
    module_id: uuid.UUID
    target_type: TargetType
    target: str
    operations: list[Operation]
    result: AccessResult
    active: bool
    description: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, policy: ModuleAccessPolicy) -> PolicyOut:
        return cls(
            id=policy.id,
            module_id=policy.module_id,
            target_type=policy.target_type,
            target=policy.target,
            operations=sorted(policy.operations),
            result=policy.result,
            active=policy.active,
            description=policy.description,
            created_at=policy.created_at,
            updated_at=policy.updated_at,
        )


class ExplainIn(InputModel):
    """A caller (a subject and its roles) and an operation to decide, without calling."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"subject": "svc-payroll", "roles": ["payroll"], "operation": "decrypt"}]
        }
    )

    subject: str = Field(min_length=1, max_length=256, description="the token subject")
    roles: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=64, description="the token's roles"
    )
    operation: Operation


class EvaluatedPolicyOut(PolicyOut):
    matched: bool
    effect: str = Field(description="decided, outweighed, no_match or inactive")


class ExplainOut(BaseModel):
    allowed: bool
    result: AccessResult
    operation: Operation
    decided_by: uuid.UUID | None = Field(description="the deciding policy; null: the default")
    default_access: AccessResult
    explanation: str
    policies: list[EvaluatedPolicyOut]

    @classmethod
    def of(cls, found: AccessExplanation) -> ExplainOut:
        decision = found.decision
        return cls(
            allowed=decision.allowed,
            result=decision.result,
            operation=decision.operation,
            decided_by=decision.decided_by,
            default_access=found.default_access,
            explanation=decision.explain(),
            policies=[
                EvaluatedPolicyOut(
                    **PolicyOut.of(p).model_dump(),
                    matched=p.id in decision.matched,
                    effect=found.effect(p),
                )
                for p in found.policies
            ],
        )
