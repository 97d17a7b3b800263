"""The one EKMS configuration of an instance and its external instance key (the EKEK)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from app.domain.errors import Conflict, InvalidInput, Reason
from app.domain.values import ExternalKeyStatus, KmsProvider, RevocationPolicy

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
    revocation_policy: RevocationPolicy = RevocationPolicy.ANY

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

    def reroot(self, provider: KmsProvider, key_id: str, region: str | None, now: datetime) -> None:
        """Name another external key as the first. Only for a key that already wraps the KEK
        (the first key is being removed), so no wrapped key is orphaned: the one way the
        critical fields change once active."""
        _validate_key_id(provider, key_id)
        self.provider, self.key_id, self.region = provider, key_id, region
        self.updated_at = now

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
        return record_observed(
            self, status, now, reason=reason, reason_code=reason_code, deletion_date=deletion_date
        )

    @property
    def refused(self) -> bool:
        """UNAVAILABLE because the KMS refused (access denied, the key no longer unwraps the
        EKEK): the chain stops at once, with no grace period."""
        return is_refused(self)


class ObservedKey(Protocol):
    """What ekms last saw of an external key (the configuration's first key, or any key)."""

    external_key_status: ExternalKeyStatus
    status_reason: str | None
    status_reason_code: Reason | None
    deletion_date: datetime | None
    last_sync_at: datetime | None
    unavailable_since: datetime | None


def is_refused(key: ObservedKey) -> bool:
    """UNAVAILABLE because the KMS said no (access denied, unwrap failed)."""
    return (
        key.external_key_status is ExternalKeyStatus.UNAVAILABLE
        and key.status_reason_code in REFUSAL_REASONS
    )


def record_observed(
    key: ObservedKey,
    status: ExternalKeyStatus,
    now: datetime,
    *,
    reason: str | None = None,
    reason_code: Reason | None = None,
    deletion_date: datetime | None = None,
) -> bool:
    """Record one observation of ``key``; returns whether its status (or refusal) changed."""
    refused = status is ExternalKeyStatus.UNAVAILABLE and reason_code in REFUSAL_REASONS
    changed = status != key.external_key_status or refused != is_refused(key)
    if status is ExternalKeyStatus.UNAVAILABLE:
        if key.unavailable_since is None or changed:
            key.unavailable_since = now
    else:
        key.unavailable_since = None
    key.external_key_status = status
    key.status_reason = reason
    key.status_reason_code = reason_code if status is ExternalKeyStatus.UNAVAILABLE else None
    key.deletion_date = deletion_date
    key.last_sync_at = now
    return changed


def copy_observed(target: ObservedKey, source: ObservedKey) -> None:
    """Make ``target`` show what ``source`` saw (the first key's state lives in both the
    configuration, where the previous schema head reads it, and its own key row)."""
    target.external_key_status = source.external_key_status
    target.status_reason = source.status_reason
    target.status_reason_code = source.status_reason_code
    target.deletion_date = source.deletion_date
    target.last_sync_at = source.last_sync_at
    target.unavailable_since = source.unavailable_since


UPDATABLE_FIELDS = frozenset({"provider", "key_id", "region", "sync_interval", "revocation_policy"})


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
    external_key_id: uuid.UUID | None = None  # the key that wrapped it (None: the first key)
    kek_id: uuid.UUID | None = None  # the KEK it wraps, when not its own id (a second key's)

    @property
    def wraps(self) -> uuid.UUID:
        """The id of the KEK this EKEK wraps (the KEK's own row has the KEK's id)."""
        return self.kek_id or self.id

    def rewrapped(self, wrapped_kek: bytes, kms_key_arn: str, marker: str, now: datetime) -> None:
        self.wrapped_kek = wrapped_kek
        self.kms_key_arn = kms_key_arn
        self.rotation_marker = marker
        self.rewrapped_at = now
