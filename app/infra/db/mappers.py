"""Rows to entities and back, by hand (``tables``: conventions): ``*_values`` are the columns to
write, without ``revision`` (repositories own it); ``*_from_row`` rebuild and validate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import RowMapping

from app.domain.audit import AuditEvent, AuditResult
from app.domain.ekms_config import ExternalInstanceKey, ExternalKmsConfig, ObservedKey
from app.domain.errors import Reason
from app.domain.module import CryptoModule, EncryptedFieldConfig, ModuleKey
from app.domain.values import (
    AccessResult,
    Algorithm,
    ExternalKeyStatus,
    KeyState,
    KmsProvider,
    ModuleState,
    RevocationPolicy,
)

Values = dict[str, Any]
_SECOND = timedelta(seconds=1)


def _seconds(value: timedelta | None) -> int | None:
    return None if value is None else value // _SECOND


def _duration(seconds: int | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)


def reason_or_none(value: str | None) -> Reason | None:
    if value is None:
        return None
    try:
        return Reason(value)
    except ValueError:  # a code a newer replica wrote: treat as a refusal's absence
        return None


def observed_values(k: ObservedKey) -> Values:
    """The columns of what ekms last saw of an external key (the config's and each key's)."""
    return {
        "external_key_status": k.external_key_status.value,
        "status_reason": k.status_reason,
        "status_reason_code": k.status_reason_code.value if k.status_reason_code else None,
        "deletion_date": k.deletion_date,
        "last_sync_at": k.last_sync_at,
        "unavailable_since": k.unavailable_since,
    }


def observed_from_row(r: RowMapping) -> dict[str, Any]:
    """The keyword arguments of an observed key's state, from its columns."""
    return {
        "external_key_status": ExternalKeyStatus(r["external_key_status"]),
        "status_reason": r["status_reason"],
        "status_reason_code": reason_or_none(r["status_reason_code"]),
        "deletion_date": r["deletion_date"],
        "last_sync_at": r["last_sync_at"],
        "unavailable_since": r["unavailable_since"],
    }


def config_values(c: ExternalKmsConfig) -> Values:
    return {
        "id": c.id,
        "instance_id": c.instance_id,
        "provider": c.provider.value,
        "key_id": c.key_id,
        "region": c.region,
        "endpoint_url": None,  # no longer configurable (a server setting); kept for old heads
        "sync_interval_seconds": c.sync_interval // _SECOND,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "active": c.active,
        "revocation_policy": c.revocation_policy.value,
    } | observed_values(c)


def config_from_row(r: RowMapping) -> ExternalKmsConfig:
    return ExternalKmsConfig(
        id=r["id"],
        instance_id=r["instance_id"],
        provider=KmsProvider(r["provider"]),
        key_id=r["key_id"],
        region=r["region"],
        sync_interval=timedelta(seconds=r["sync_interval_seconds"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        active=r["active"],
        revision=r["revision"],
        revocation_policy=RevocationPolicy(r["revocation_policy"]),
        **observed_from_row(r),
    )


def instance_key_values(k: ExternalInstanceKey) -> Values:
    return {
        "id": k.id,
        "wrapped_kek": k.wrapped_kek,
        "kms_key_arn": k.kms_key_arn,
        "rotation_marker": k.rotation_marker,
        "encryption_context": dict(k.encryption_context),
        "fingerprint": k.fingerprint,
        "created_at": k.created_at,
        "rewrapped_at": k.rewrapped_at,
        "active": k.active,
        "external_key_id": k.external_key_id,
        "kek_id": k.kek_id,
    }


def instance_key_from_row(r: RowMapping) -> ExternalInstanceKey:
    return ExternalInstanceKey(
        id=r["id"],
        wrapped_kek=bytes(r["wrapped_kek"]),
        kms_key_arn=r["kms_key_arn"],
        rotation_marker=r["rotation_marker"],
        encryption_context=dict(r["encryption_context"]),
        fingerprint=r["fingerprint"],
        created_at=r["created_at"],
        rewrapped_at=r["rewrapped_at"],
        active=r["active"],
        revision=r["revision"],
        external_key_id=r["external_key_id"],
        kek_id=r["kek_id"],
    )


def module_values(m: CryptoModule) -> Values:
    return {
        "id": m.id,
        "name": m.name,
        "algorithm": m.algorithm.label,
        "created_at": m.created_at,
        "updated_at": m.updated_at,
        "external_wrap": m.external_wrap,
        "default_access": m.default_access.value,
        "state": m.state.value,
        "description": m.description,
        "rotation_period_seconds": _seconds(m.rotation_period),
        "destroy_deactivated_after_seconds": _seconds(m.destroy_deactivated_after),
    }


def module_from_row(r: RowMapping) -> CryptoModule:
    return CryptoModule(
        id=r["id"],
        name=r["name"],
        algorithm=Algorithm.from_label(r["algorithm"]),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        external_wrap=r["external_wrap"],
        default_access=AccessResult(r["default_access"]),
        state=ModuleState(r["state"]),
        description=r["description"],
        rotation_period=_duration(r["rotation_period_seconds"]),
        destroy_deactivated_after=_duration(r["destroy_deactivated_after_seconds"]),
        revision=r["revision"],
    )


def module_key_values(k: ModuleKey) -> Values:
    return {
        "module_id": k.module_id,
        "version": k.version,
        "wrapped_dek": k.wrapped_dek,
        "kek_id": None if k.local_wrap else k.kek_id,  # its FK names external KEKs only
        "local_kek_id": k.kek_id if k.local_wrap else None,
        "state": k.state.value,
        "created_at": k.created_at,
        "activated_at": k.activated_at,
        "deactivated_at": k.deactivated_at,
        "suspended_from": k.suspended_from.value if k.suspended_from else None,
        "state_changed_at": k.state_changed_at,
        "destroyed_at": k.destroyed_at,
        "state_reason": k.state_reason,
        "lost_at": k.lost_at,
        "encryption_count": k.encryption_count,
        "encryptions_reserved": k.encryptions_reserved,
    }


def module_key_from_row(r: RowMapping) -> ModuleKey:
    wrapped = r["wrapped_dek"]
    suspended_from = r["suspended_from"]
    return ModuleKey(
        module_id=r["module_id"],
        version=r["version"],
        wrapped_dek=None if wrapped is None else bytes(wrapped),
        kek_id=r["local_kek_id"] or r["kek_id"],
        local_wrap=r["local_kek_id"] is not None,
        state=KeyState(r["state"]),
        created_at=r["created_at"],
        activated_at=r["activated_at"],
        deactivated_at=r["deactivated_at"],
        suspended_from=None if suspended_from is None else KeyState(suspended_from),
        state_changed_at=r["state_changed_at"],
        destroyed_at=r["destroyed_at"],
        state_reason=r["state_reason"],
        lost_at=r["lost_at"],
        encryption_count=r["encryption_count"],
        encryptions_reserved=r["encryptions_reserved"],
        revision=r["revision"],
    )


def field_config_values(f: EncryptedFieldConfig) -> Values:
    return {
        "id": f.id,
        "table_name": f.table,
        "column_name": f.column,
        "module_id": f.module_id,
        "created_at": f.created_at,
        "updated_at": f.updated_at,
        "active": f.active,
    }


def field_config_from_row(r: RowMapping) -> EncryptedFieldConfig:
    return EncryptedFieldConfig(
        id=r["id"],
        table=r["table_name"],
        column=r["column_name"],
        module_id=r["module_id"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        active=r["active"],
        revision=r["revision"],
    )


def audit_values(e: AuditEvent) -> Values:
    return {
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "result": e.result.value,
        "module": e.module,
        "target": e.target,
        "reason": e.reason,
        "details": dict(e.details),
        "count": e.count,
    }


def audit_from_row(r: RowMapping) -> AuditEvent:
    return AuditEvent(
        id=r["id"],
        at=r["at"],
        actor=r["actor"],
        action=r["action"],
        result=AuditResult(r["result"]),
        module=r["module"],
        target=r["target"],
        reason=r["reason"],
        details=dict(r["details"]),
        count=r["count"],
    )
