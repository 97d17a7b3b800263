"""Module access policies (MAPs) and their evaluation.

Evaluation of a caller and an operation against a module's active policies that match:

1. any matching StrictReject denies, whatever else grants;
2. otherwise any matching Track grants (and the access is recorded);
3. otherwise the module's default decides (Reject unless the module says Track).

A Reject policy denies only where nothing grants: it documents intent and shows up in the
decision's explanation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.domain.errors import InvalidInput
from app.domain.values import AccessResult, Caller, Operation, TargetType


@dataclass(slots=True)
class ModuleAccessPolicy:
    id: uuid.UUID
    module_id: uuid.UUID
    target_type: TargetType
    target: str
    operations: frozenset[Operation]
    result: AccessResult
    created_at: datetime
    updated_at: datetime
    active: bool = True
    description: str = ""
    revision: int = 0

    def __post_init__(self) -> None:
        validate_policy_fields(self.target, self.operations, self.description)

    def matches(self, caller: Caller, operation: Operation) -> bool:
        if not self.active or operation not in self.operations:
            return False
        if self.target_type is TargetType.SUBJECT:
            return self.target == caller.subject
        return self.target in caller.roles


def validate_policy_fields(target: str, operations: frozenset[Operation], description: str) -> None:
    if not isinstance(target, str) or not target or len(target) > 256 or target != target.strip():
        raise InvalidInput(
            "target must be 1-256 characters without surrounding spaces", field="target"
        )
    if not operations:
        raise InvalidInput("operations must name at least one operation", field="operations")
    if len(description) > 1024:
        raise InvalidInput("description is at most 1024 characters", field="description")


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating the policies, with its explanation."""

    allowed: bool
    result: AccessResult
    operation: Operation
    matched: tuple[uuid.UUID, ...]
    evaluated: tuple[uuid.UUID, ...]
    decided_by: uuid.UUID | None  # None: the module default decided

    def explain(self) -> str:
        who = f"policy {self.decided_by}" if self.decided_by else "the module default"
        verdict = "allowed" if self.allowed else "denied"
        return (
            f"{self.operation.value} {verdict} ({self.result.value}) by {who}; "
            f"{len(self.matched)} of {len(self.evaluated)} policies matched"
        )


def evaluate(
    policies: Iterable[ModuleAccessPolicy],
    caller: Caller,
    operation: Operation,
    default: AccessResult = AccessResult.REJECT,
) -> Decision:
    evaluated: list[uuid.UUID] = []
    matched: list[ModuleAccessPolicy] = []
    for policy in policies:
        evaluated.append(policy.id)
        if policy.matches(caller, operation):
            matched.append(policy)
    result, decided_by = _verdict(matched, default)
    return Decision(
        allowed=result is AccessResult.TRACK,
        result=result,
        operation=operation,
        matched=tuple(p.id for p in matched),
        evaluated=tuple(evaluated),
        decided_by=decided_by,
    )


def _verdict(
    matched: list[ModuleAccessPolicy], default: AccessResult
) -> tuple[AccessResult, uuid.UUID | None]:
    """STRICT_REJECT beats TRACK beats REJECT, the first matching policy of the winning result
    deciding; with none matched, the module default decides."""
    for wanted in (AccessResult.STRICT_REJECT, AccessResult.TRACK, AccessResult.REJECT):
        for policy in matched:
            if policy.result is wanted:
                return wanted, policy.id
    return default, None
