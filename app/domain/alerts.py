"""External key status history and the alerts opened while the key chain cannot serve."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.domain.values import ExternalKeyStatus

KEY_UNUSABLE = "external_key_unusable"


def key_unusable_kind(external_key_id: uuid.UUID | None) -> str:
    """The alert kind for one key: the first key keeps the plain kind (the previous schema
    head opens and closes it); every other key has its own, so each has one open alert."""
    return KEY_UNUSABLE if external_key_id is None else f"{KEY_UNUSABLE}:{external_key_id}"


@dataclass(frozen=True, slots=True)
class KeyStatusChange:
    id: uuid.UUID
    at: datetime
    previous: ExternalKeyStatus
    status: ExternalKeyStatus
    reason: str | None = None
    external_key_id: uuid.UUID | None = None  # None: the first key


@dataclass(frozen=True, slots=True)
class Alert:
    """Open while ``closed_at`` is None. At most one open alert per ``kind``."""

    id: uuid.UUID
    kind: str
    message: str
    opened_at: datetime
    closed_at: datetime | None = None
