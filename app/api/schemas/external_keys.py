"""Bodies of /ekms/external-keys, and the per-key parts of /ekms/status and /ekms/sync."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from app.api.schemas.common import InputModel
from app.application.external_keys import ExternalKeyInput, ExternalKeyView
from app.application.sync import KeySyncReport, SyncReport
from app.domain.ekms_config import ExternalInstanceKey
from app.domain.external_keys import ExternalKey
from app.domain.values import ExternalKeyStatus, KmsProvider


class ExternalKeyIn(InputModel):
    """One more external key to wrap the current KEK under (probed before anything is kept)."""

    provider: KmsProvider = Field(description="`aws`, `pkcs11`, `kmip` or `local`")
    key_id: str = Field(
        min_length=1, max_length=2048, description="AWS key id/ARN/alias, PKCS#11 label, KMIP id"
    )
    region: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9-]+$")

    def to_input(self) -> ExternalKeyInput:
        return ExternalKeyInput(self.provider, self.key_id, self.region)


class ExternalKeyItemOut(BaseModel):
    """One external key of the configuration and its EKEK of the current KEK."""

    id: uuid.UUID
    first: bool = Field(description="the key the configuration's flat provider/key_id name")
    provider: KmsProvider
    key_id: str
    region: str | None
    state: ExternalKeyStatus
    status_reason: str | None
    status_reason_code: str | None
    deletion_date: datetime | None
    last_sync_at: datetime | None
    unavailable_since: datetime | None
    rotation_marker: str | None = Field(description="None: this key holds no EKEK of the KEK")
    wrapped_under_key_arn: str | None
    rewrapped_at: datetime | None

    @classmethod
    def of(
        cls, key: ExternalKey, ekek: ExternalInstanceKey | None, *, first: bool
    ) -> ExternalKeyItemOut:
        return cls(
            id=key.id,
            first=first,
            provider=key.provider,
            key_id=key.key_id,
            region=key.region,
            state=key.external_key_status,
            status_reason=key.status_reason,
            status_reason_code=key.status_reason_code.value if key.status_reason_code else None,
            deletion_date=key.deletion_date,
            last_sync_at=key.last_sync_at,
            unavailable_since=key.unavailable_since,
            rotation_marker=ekek.rotation_marker if ekek else None,
            wrapped_under_key_arn=ekek.kms_key_arn if ekek else None,
            rewrapped_at=ekek.rewrapped_at if ekek else None,
        )

    @classmethod
    def of_view(cls, view: ExternalKeyView) -> ExternalKeyItemOut:
        return cls.of(view.key, view.ekek, first=view.first)


class ExternalKeyListOut(BaseModel):
    items: list[ExternalKeyItemOut]


class SyncFields(BaseModel):
    """What a sync saw of one external key."""

    status: ExternalKeyStatus
    previous: ExternalKeyStatus
    changed: bool
    reason: str | None
    rewrapped: bool = Field(description="whether the EKEK was rewrapped after an external rotation")
    rotation_marker: str | None
    inconclusive: bool = Field(
        default=False,
        description="ekms was too busy to hear the KMS: nothing recorded, the sync stays due",
    )

    @staticmethod
    def fields_of(report: KeySyncReport | SyncReport) -> dict[str, Any]:
        """The shared fields, from one key's report or the whole sync's (its first key's)."""
        return {
            "status": report.status,
            "previous": report.previous,
            "changed": report.changed,
            "reason": report.reason,
            "rewrapped": report.rewrapped,
            "rotation_marker": report.rotation_marker,
            "inconclusive": report.inconclusive,
        }


class KeySyncOut(SyncFields):
    """What one sync saw of one external key, by its id."""

    id: uuid.UUID

    @classmethod
    def of(cls, report: KeySyncReport) -> KeySyncOut:
        return cls(id=report.key, **cls.fields_of(report))
