"""Module access policy rows to ``ModuleAccessPolicy`` and back (conventions: ``tables``).

``justification_codes`` is NULL on rows written before 0012 and on rows without codes. A code
this release does not know (a newer replica wrote it) is kept as it is: it matches no call
(``JustificationRule``), so it refuses, never grants.
"""

from __future__ import annotations

from sqlalchemy import RowMapping

from app.domain.justification import JustificationRule
from app.domain.policy import ModuleAccessPolicy
from app.domain.values import AccessResult, Operation, TargetType
from app.infra.db.mappers import Values


def policy_values(p: ModuleAccessPolicy) -> Values:
    rule = p.justification
    return {
        "id": p.id,
        "module_id": p.module_id,
        "target_type": p.target_type.value,
        "target": p.target,
        "operations": sorted(op.value for op in p.operations),
        "result": p.result.value,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "active": p.active,
        "description": p.description,
        "require_justification": rule.required,
        "justification_codes": sorted(rule.codes) if rule.codes else None,
    }


def policy_from_row(r: RowMapping) -> ModuleAccessPolicy:
    return ModuleAccessPolicy(
        id=r["id"],
        module_id=r["module_id"],
        target_type=TargetType(r["target_type"]),
        target=r["target"],
        operations=frozenset(Operation(op) for op in r["operations"]),
        result=AccessResult(r["result"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        active=r["active"],
        description=r["description"],
        revision=r["revision"],
        justification=JustificationRule(
            bool(r["require_justification"]), frozenset(r["justification_codes"] or ())
        ),
    )
