"""The one EKMS configuration of an instance and its external instance key (the EKEK)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.domain.errors import Conflict, InvalidInput, Reason
from app.domain.values import ExternalKeyStatus, KmsProvider

DEFAULT_SYNC_INTERVAL = timedelta(minutes=30)
MIN_SYNC_INTERVAL = timedelta(minutes=1)
MAX_SYNC_INTERVAL = timedelta(days=1)

# Changing any of these once the configuration is active would orphan the wrapped KEK. (Where
# KMS calls go is not part of the configuration at all: it is a server setting, so no API
# caller can point the KEK at another endpoint.)
CRITICAL_FIELDS = frozenset({"provider", "key_id", "region"})

# Answers that mean "you may not" rather than "no answer": the chain fails closed at once,
# without the grace period that covers an unreachable KMS.
REFUSAL_REASONS = frozenset({Reason.EXTERNAL_KEY_ACCESS_DENIED, Reason.EXTERNAL_KEY_UNWRAP_FAILED})


@dataclass(slots=True)
class ExternalKmsConfig:
    """Where the customer's root key lives and what ekms last saw of it."""

    id: uuid.UUID
    instance_id: str
    provider: KmsProvider
    key_id: str
    region: str | None
    sync_interval: timedelta
    created_at: datetime
    updated_at: datetime
    active: bool = False
    external_key_status: ExternalKeyStatus = ExternalKeyStatus.UNKNOWN
    status_reason: str | None = None
    status_reason_code: Reason | None = None
    deletion_date: datetime | None = None
    last_sync_at: datetime | None = None
    unavailable_since: datetime | None = None
    revision: int = 0

    def __post_init__(self) -> None:
        _validate_key_id(self.provider, self.key_id)
        _validate_interval(self.sync_interval)

    def update(self, changes: dict[str, object], now: datetime) -> list[str]:
        """Apply mutable changes; refuse critical ones once active. Returns the changed names."""
        changed: list[str] = []
        for name, value in changes.items():
            if name not in UPDATABLE_FIELDS:
                raise InvalidInput(f"{name} cannot be set", field=name)
            if getattr(self, name) == value:
                continue
            if name in CRITICAL_FIELDS and self.active:
                raise Conflict(
                    f"{name} cannot change once the configuration is active: the wrapped key "
                    "encryption key is bound to the external key it names",
                    reason=Reason.IMMUTABLE_FIELD,
                )
            changed.append(name)
        for name in changed:
            setattr(self, name, changes[name])
        _validate_key_id(self.provider, self.key_id)
        _validate_interval(self.sync_interval)
        if changed:
            self.updated_at = now
        return changed

    def record_status(
        self,
        status: ExternalKeyStatus,
        now: datetime,
        *,
        reason: str | None = None,
        reason_code: Reason | None = None,
        deletion_date: datetime | None = None,
    ) -> bool:
        """Record what the sync saw. Returns whether the status (or, for UNAVAILABLE, whether it
        is a refusal) changed."""
        refused = status is ExternalKeyStatus.UNAVAILABLE and reason_code in REFUSAL_REASONS
        changed = status != self.external_key_status or refused != self.refused
        if status is ExternalKeyStatus.UNAVAILABLE:
            if self.unavailable_since is None or changed:
                self.unavailable_since = now
        else:
            self.unavailable_since = None
        self.external_key_status = status
        self.status_reason = reason
        self.status_reason_code = reason_code if status is ExternalKeyStatus.UNAVAILABLE else None
        self.deletion_date = deletion_date
        self.last_sync_at = now
        return changed

    @property
    def refused(self) -> bool:
        """UNAVAILABLE because the KMS refused (access denied, the key no longer unwraps the
        EKEK): the chain stops at once, with no grace period."""
        return (
            self.external_key_status is ExternalKeyStatus.UNAVAILABLE
            and self.status_reason_code in REFUSAL_REASONS
        )


UPDATABLE_FIELDS = frozenset({"provider", "key_id", "region", "sync_interval"})


def _validate_key_id(provider: KmsProvider, key_id: str) -> None:
    if not isinstance(key_id, str) or not key_id.strip() or len(key_id) > 2048:
        raise InvalidInput("key_id must be a non-empty KMS key id, ARN or alias", field="key_id")
    if provider is KmsProvider.AWS and any(ch.isspace() for ch in key_id):
        raise InvalidInput("key_id must not contain whitespace", field="key_id")


def _validate_interval(interval: timedelta) -> None:
    if not MIN_SYNC_INTERVAL <= interval <= MAX_SYNC_INTERVAL:
        raise InvalidInput(
            "sync interval must be between 1 minute and 1 day", field="sync_interval_minutes"
        )


@dataclass(slots=True)
class ExternalInstanceKey:
    """The EKEK: the KEK as wrapped by the external KMS. Holds no plaintext.

    ``fingerprint`` identifies the KEK without revealing it (an HMAC of a fixed label under the
    KEK), so a rewrap can be shown to keep the same KEK.
    """

    id: uuid.UUID
    wrapped_kek: bytes = field(repr=False)
    kms_key_arn: str  # the provider's key_name that wrapped it (named for the first provider:
    # the column keeps its name, since renaming one breaks a rolling upgrade)
    rotation_marker: str
    encryption_context: dict[str, str]
    fingerprint: str
    created_at: datetime
    rewrapped_at: datetime | None = None
    active: bool = True
    revision: int = 0

    def rewrapped(self, wrapped_kek: bytes, kms_key_arn: str, marker: str, now: datetime) -> None:
        self.wrapped_kek = wrapped_kek
        self.kms_key_arn = kms_key_arn
        self.rotation_marker = marker
        self.rewrapped_at = now
