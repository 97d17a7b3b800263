"""The keys the audit buffer aggregates by, and the rows it makes of them (``audit``)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime

from app.domain.audit import AuditEvent, AuditResult

Extra = tuple[tuple[str, str], ...]
"""Further (name, value) pairs an event is aggregated by and that land in its ``details``."""
AggregateKey = tuple[str, str, str | None, str | None, AuditResult, str | None, str | None, Extra]
UsageKey = tuple[uuid.UUID, int]
CountKey = tuple[int, int]
"""A usage count's key while it waits for a flush: the module id's 128-bit integer (a slot of
``uuid.UUID``, read in C) and the version. ``uuid.UUID.__hash__`` is Python code, and every
encrypt counts its usage; a tuple of two ints hashes in C."""


def aggregate_event(
    event_id: uuid.UUID, now: datetime, key: AggregateKey, count: int
) -> AuditEvent:
    actor, action, module, target, result, reason, decided_by, extra = key
    details: dict[str, object] = {"decided_by": decided_by} if decided_by else {}
    details.update(extra)
    return AuditEvent(
        id=event_id,
        at=now,
        actor=actor,
        action=action,
        result=result,
        module=module,
        target=target,
        reason=reason,
        details=details,
        count=count,
    )


def by_uuid(usage: Mapping[CountKey, int]) -> dict[UsageKey, int]:
    """The counts keyed as the key store takes them: ``(module id, version)``."""
    return {(uuid.UUID(int=module), version): n for (module, version), n in usage.items()}
