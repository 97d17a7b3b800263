"""Bodies of /modules/{name}/policies and /policies/{id}."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import InputModel
from app.application.policies import PolicyInput
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
