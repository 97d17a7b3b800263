"""Bodies of /ekms/config, /ekms/config/test, /ekms/status, /ekms/sync and /ekms/kek/rotate."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.api.schemas.audit_checkpoints import SigningKeyOut
from app.api.schemas.common import InputModel
from app.api.schemas.external_keys import ExternalKeyItemOut, KeySyncOut, SyncFields
from app.application.audit_checkpoints import SigningKeyInfo
from app.application.config_end import ConfigEnded
from app.application.configuration import ConfigInput, EkmsStatus
from app.application.sync import SyncReport
from app.domain.alerts import Alert
from app.domain.ekms_config import ExternalKmsConfig
from app.domain.values import ExternalKeyStatus, KmsProvider, RevocationPolicy

_KEY_ID_EXAMPLE = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


class ConfigIn(InputModel):
    """Create the configuration, or change its mutable fields.

    On update, fields you leave out keep their value; ``provider``, ``key_id`` and ``region``
    cannot change once the configuration is active (409 IMMUTABLE_FIELD).
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "provider": "aws",
                    "key_id": _KEY_ID_EXAMPLE,
                    "region": "eu-west-1",
                    "sync_interval_minutes": 30,
                    "activate": True,
                }
            ]
        }
    )

    provider: KmsProvider = Field(description="`aws`, or `local` for the embedded root key")
    key_id: str = Field(min_length=1, max_length=2048, description="key id, ARN or alias")
    region: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9-]+$")
    sync_interval_minutes: int | None = Field(
        default=None, ge=1, le=1440, description="default: EKMS_SYNC_INTERVAL_MINUTES (30)"
    )
    activate: bool = Field(
        default=True,
        description="generate the KEK and wrap it under the external key (it must be enabled)",
    )
    revocation_policy: RevocationPolicy = Field(
        default=RevocationPolicy.ANY,
        description="with several external keys: `any` (any key disabled, pending deletion or "
        "deleted stops the chain) or `all` (the chain serves while one key is enabled)",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_endpoint(cls, data: object) -> object:
        if isinstance(data, dict) and "endpoint_url" in data:
            raise PydanticCustomError(
                "endpoint_not_accepted",
                "endpoint_url is not accepted: where KMS calls go is a server setting "
                "(EKMS_AWS_ENDPOINT_URL), so no API caller can point the key encryption key "
                "at another server",
            )
        return data

    def to_input(self, default_sync_minutes: int) -> ConfigInput:
        minutes = self.sync_interval_minutes or default_sync_minutes
        return ConfigInput(
            provider=self.provider,
            key_id=self.key_id,
            region=self.region,
            sync_interval=timedelta(minutes=minutes),
            activate=self.activate,
            revocation_policy=self.revocation_policy,
        )

    def changes(self) -> dict[str, object]:
        """Only the fields the caller sent, named as the domain names them."""
        sent = self.model_fields_set
        changes: dict[str, object] = {"provider": self.provider, "key_id": self.key_id}
        if "region" in sent:
            changes["region"] = self.region
        if "sync_interval_minutes" in sent and self.sync_interval_minutes is not None:
            changes["sync_interval"] = timedelta(minutes=self.sync_interval_minutes)
        if "revocation_policy" in sent:
            changes["revocation_policy"] = self.revocation_policy
        return changes


class ConfigOut(BaseModel):
    id: uuid.UUID
    instance_id: str
    provider: KmsProvider
    key_id: str
    region: str | None
    kms_endpoint: str = Field(
        description="where KMS calls go: the server setting (EKMS_AWS_ENDPOINT_URL) or the "
        "provider's default; never taken from a request"
    )
    sync_interval_minutes: int
    revocation_policy: RevocationPolicy
    active: bool
    external_key_status: ExternalKeyStatus
    status_reason: str | None
    deletion_date: datetime | None
    last_sync_at: datetime | None
    unavailable_since: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, config: ExternalKmsConfig, kms_endpoint: str) -> ConfigOut:
        return cls(
            id=config.id,
            instance_id=config.instance_id,
            provider=config.provider,
            key_id=config.key_id,
            region=config.region,
            kms_endpoint=kms_endpoint,
            sync_interval_minutes=int(config.sync_interval.total_seconds() // 60),
            revocation_policy=config.revocation_policy,
            active=config.active,
            external_key_status=config.external_key_status,
            status_reason=config.status_reason,
            deletion_date=config.deletion_date,
            last_sync_at=config.last_sync_at,
            unavailable_since=config.unavailable_since,
            created_at=config.created_at,
            updated_at=config.updated_at,
        )


class ExternalKeyOut(BaseModel):
    provider: KmsProvider | None
    key_id: str | None
    kms_endpoint: str | None = Field(
        description="where this replica sends the key's KMS calls (a server setting)"
    )
    status: ExternalKeyStatus
    status_reason: str | None
    status_reason_code: str | None = Field(
        description="for unavailable: EXTERNAL_KEY_ACCESS_DENIED / EXTERNAL_KEY_UNWRAP_FAILED "
        "(a refusal: stops at once) or KMS_UNAVAILABLE / KMS_THROTTLED (no answer: grace period)"
    )
    deletion_date: datetime | None
    last_sync_at: datetime | None
    unavailable_since: datetime | None


class InstanceKeyOut(BaseModel):
    """The KEK (by fingerprint) and what the external key last wrapped it under."""

    kek_fingerprint: str | None
    kek_created_at: datetime | None
    wrapped_under_key_arn: str | None
    rotation_marker: str | None
    rewrapped_at: datetime | None


class AlertOut(BaseModel):
    """An open alert: opened by the status sync while the external key is unusable, closed
    when it is usable again."""

    id: uuid.UUID
    kind: str = Field(examples=["external_key_unusable"])
    message: str = Field(examples=["the external key is disabled"])
    opened_at: datetime

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        return cls(id=alert.id, kind=alert.kind, message=alert.message, opened_at=alert.opened_at)


class ModuleWrapOut(BaseModel):
    name: str
    external_wrap: bool = Field(description="whether the module depends on the external key")
    serving: bool = Field(description="whether the module's KEK serves now")
    serving_reason: str | None = Field(description="why not, as a reason code")


class StatusOut(BaseModel):
    configured: bool
    active: bool
    serving: bool = Field(description="whether the data plane can encrypt and decrypt now")
    serving_reason: str | None = Field(description="why not, as a reason code")
    external_key: ExternalKeyOut
    instance_key: InstanceKeyOut
    alerts: list[AlertOut] = Field(description="open alerts on the key chain")
    revocation_policy: RevocationPolicy | None = None
    external_keys: list[ExternalKeyItemOut] = Field(
        default_factory=list,
        description="every external key, the first first (`external_key` is the first)",
    )
    audit_signing_key: SigningKeyOut | None = Field(
        default=None, description="the key that signs audit checkpoints (null before the first)"
    )
    modules: list[ModuleWrapOut] = Field(
        default_factory=list,
        description="every module: external_wrap=false ones keep serving through an external "
        "key outage (and cannot be revoked by it)",
    )
    local_kek_fingerprint: str | None = Field(
        default=None, description="the local KEK of external_wrap=false modules, if any"
    )

    @classmethod
    def of(cls, status: EkmsStatus, signing_key: SigningKeyInfo | None = None) -> StatusOut:
        return cls(
            audit_signing_key=SigningKeyOut.of(signing_key),
            configured=status.configured,
            active=status.active,
            serving=status.serving,
            serving_reason=status.serving_reason,
            external_key=ExternalKeyOut(
                provider=status.provider,
                key_id=status.key_id,
                kms_endpoint=status.kms_endpoint,
                status=status.external_key_status,
                status_reason=status.status_reason,
                status_reason_code=status.status_reason_code,
                deletion_date=status.deletion_date,
                last_sync_at=status.last_sync_at,
                unavailable_since=status.unavailable_since,
            ),
            instance_key=InstanceKeyOut(
                kek_fingerprint=status.kek_fingerprint,
                kek_created_at=status.kek_created_at,
                wrapped_under_key_arn=status.ekek_key_name,
                rotation_marker=status.ekek_rotation_marker,
                rewrapped_at=status.ekek_rewrapped_at,
            ),
            alerts=[AlertOut.of(a) for a in status.open_alerts],
            revocation_policy=status.revocation_policy,
            external_keys=[
                ExternalKeyItemOut.of(k, e, first=i == 0) for i, (k, e) in enumerate(status.keys)
            ],
            modules=[
                ModuleWrapOut(
                    name=m.name,
                    external_wrap=m.external_wrap,
                    serving=m.serving_reason is None,
                    serving_reason=m.serving_reason,
                )
                for m in status.modules
            ],
            local_kek_fingerprint=status.local_kek_fingerprint,
        )


class SyncOut(SyncFields):
    """What the sync saw: the first key in the flat fields, every key in ``keys``."""

    keys: list[KeySyncOut] = Field(
        default_factory=list, description="every external key, the first first"
    )

    @classmethod
    def of(cls, report: SyncReport) -> SyncOut:
        return cls(**cls.fields_of(report), keys=[KeySyncOut.of(k) for k in report.keys])


class ConfigEndedOut(BaseModel):
    """What ending the configuration removed; a new PUT starts a fresh chain."""

    lost_key_versions: int = Field(description="key versions under the old KEK, now lost")
    external_keys: int
    ekeks: int

    @classmethod
    def of(cls, ended: ConfigEnded) -> ConfigEndedOut:
        return cls(
            lost_key_versions=ended.lost_versions,
            external_keys=ended.external_keys,
            ekeks=ended.ekeks,
        )
