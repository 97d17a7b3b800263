"""Module access policies (MAPs) and their evaluation.

Evaluation of a caller and an operation against a module's active policies that match:

1. any matching StrictReject denies, whatever else grants;
2. otherwise any matching Track grants (and the access is recorded) whose justification rule
   the call meets (``JustificationRule``: none, any reason code, or one of some codes);
3. otherwise, if a matching Track policy asked for a justification the call lacks (or sent with
   another code), that policy denies: the module default does not grant past it;
4. otherwise the module's default decides (Reject unless the module says Track).

A Reject policy denies only where nothing grants: it documents intent and shows up in the
decision's explanation. Only Track policies take a justification rule.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from app.domain.errors import InvalidInput
from app.domain.justification import NO_RULE, JustificationRule
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
    justification: JustificationRule = NO_RULE

    def __post_init__(self) -> None:
        validate_policy_fields(
            self.target, self.operations, self.description, self.result, self.justification
        )

    def matches(self, caller: Caller, operation: Operation) -> bool:
        if not self.active or operation not in self.operations:
            return False
        if self.target_type is TargetType.SUBJECT:
            return self.target == caller.subject
        return self.target in caller.roles


def validate_policy_fields(
    target: str,
    operations: frozenset[Operation],
    description: str,
    result: AccessResult = AccessResult.TRACK,
    justification: JustificationRule = NO_RULE,
) -> None:
    if not isinstance(target, str) or not target or len(target) > 256 or target != target.strip():
        raise InvalidInput(
            "target must be 1-256 characters without surrounding spaces", field="target"
        )
    if not operations:
        raise InvalidInput("operations must name at least one operation", field="operations")
    if len(description) > 1024:
        raise InvalidInput("description is at most 1024 characters", field="description")
    if justification.required and result is not AccessResult.TRACK:
        raise InvalidInput(
            "only a track policy can require a justification", field="require_justification"
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of evaluating the policies, with its explanation."""

    allowed: bool
    result: AccessResult
    operation: Operation
    matched: tuple[uuid.UUID, ...]
    evaluated: tuple[uuid.UUID, ...]
    decided_by: uuid.UUID | None  # None: the module default decided
    unjustified: bool = False  # denied: the deciding policy wants a justification not sent

    def explain(self) -> str:
        who = f"policy {self.decided_by}" if self.decided_by else "the module default"
        verdict = "allowed" if self.allowed else "denied"
        why = ", which requires a justification the call lacks" if self.unjustified else ""
        return (
            f"{self.operation.value} {verdict} ({self.result.value}) by {who}{why}; "
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
    result, decided_by, unjustified = _verdict(matched, caller, default)
    return Decision(
        allowed=result is AccessResult.TRACK and not unjustified,
        result=result,
        operation=operation,
        matched=tuple(p.id for p in matched),
        evaluated=tuple(evaluated),
        decided_by=decided_by,
        unjustified=unjustified,
    )


def _verdict(
    matched: list[ModuleAccessPolicy], caller: Caller, default: AccessResult
) -> tuple[AccessResult, uuid.UUID | None, bool]:
    """STRICT_REJECT beats TRACK (its justification rule met) beats TRACK (not met: denied)
    beats REJECT, the first matching policy of the winning kind deciding; with none matched,
    the module default decides. The flag: denied for want of a justification."""
    for policy in matched:
        if policy.result is AccessResult.STRICT_REJECT:
            return policy.result, policy.id, False
    unmet: ModuleAccessPolicy | None = None
    for policy in matched:
        if policy.result is AccessResult.TRACK:
            if policy.justification.met_by(caller.justification):
                return policy.result, policy.id, False
            unmet = unmet or policy
    if unmet is not None:
        return AccessResult.TRACK, unmet.id, True
    for policy in matched:
        if policy.result is AccessResult.REJECT:
            return policy.result, policy.id, False
    return default, None, False
