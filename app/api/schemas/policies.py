"""Bodies of /modules/{name}/policies and /policies/{id}."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import InputModel
from app.application.policies import AccessExplanation, PolicyInput
from app.domain.errors import InvalidInput, Reason
from app.domain.justification import JustificationCode, JustificationRule, parse_justification
from app.domain.policy import ModuleAccessPolicy
from app.domain.values import AccessResult, Caller, Operation, TargetType


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
    require_justification: bool = Field(
        default=False,
        description="track only: grant only calls that send `x-ekms-justification`; a call "
        "without one is denied (403 JUSTIFICATION_REQUIRED)",
    )
    justification_codes: list[JustificationCode] = Field(
        default_factory=list,
        max_length=len(JustificationCode),
        description="with require_justification: only these reason codes grant (empty: any)",
    )

    def to_input(self) -> PolicyInput:
        codes = frozenset(code.value for code in self.justification_codes)
        return PolicyInput(
            target_type=self.target_type,
            target=self.target,
            operations=frozenset(self.operations),
            result=self.result,
            active=self.active,
            description=self.description,
            justification=JustificationRule.of(self.require_justification, codes),
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
    require_justification: bool
    justification_codes: list[str] = Field(description="empty: any code, when required")
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
            require_justification=policy.justification.required,
            justification_codes=sorted(policy.justification.codes),
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
    justification: str | None = Field(
        default=None,
        max_length=512,
        description="as the call would send `x-ekms-justification`: `CODE[:text]`",
    )

    def caller(self) -> Caller:
        """The caller to decide for, with the justification it would send."""
        if self.justification is None:
            return Caller(self.subject, frozenset(self.roles))
        try:
            justification = parse_justification(self.justification)
        except InvalidInput as exc:  # the same answer as for the header, naming this field
            raise InvalidInput(
                exc.message, field="justification", reason=Reason.JUSTIFICATION_INVALID
            ) from None
        return Caller(self.subject, frozenset(self.roles), justification)


class EvaluatedPolicyOut(PolicyOut):
    matched: bool
    effect: str = Field(
        description="decided, unjustified (matched, but the justification it requires is "
        "missing: if it decided, it denied), outweighed, no_match or inactive"
    )


class ExplainOut(BaseModel):
    allowed: bool
    result: AccessResult
    operation: Operation
    decided_by: uuid.UUID | None = Field(description="the deciding policy; null: the default")
    justification_required: bool = Field(
        description="denied because the deciding policy requires a justification the call lacks"
    )
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
            justification_required=decision.unjustified,
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
