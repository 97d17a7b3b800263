"""External key status history and the alerts opened while the key chain cannot serve."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.domain.values import ExternalKeyStatus

KEY_UNUSABLE = "external_key_unusable"


@dataclass(frozen=True, slots=True)
class KeyStatusChange:
    id: uuid.UUID
    at: datetime
    previous: ExternalKeyStatus
    status: ExternalKeyStatus
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Alert:
    """Open while ``closed_at`` is None. At most one open alert per ``kind``."""

    id: uuid.UUID
    kind: str
    message: str
    opened_at: datetime
    closed_at: datetime | None = None
