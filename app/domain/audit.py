"""Audit events: who did what, when, to what, with which result."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class AuditResult(StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record. ``count`` > 1 aggregates identical data-plane events in one flush."""

    id: uuid.UUID
    at: datetime
    actor: str
    action: str
    result: AuditResult
    module: str | None = None
    target: str | None = None
    reason: str | None = None
    details: dict[str, object] = field(default_factory=dict)
    count: int = 1
