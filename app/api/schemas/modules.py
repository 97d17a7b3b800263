"""Bodies of /modules and /modules/{name}/keys."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas.common import InputModel
from app.application.modules import ModuleInput
from app.domain.module import STATE_REASON_MAX, CryptoModule, ModuleKey
from app.domain.values import AccessResult, Algorithm, KeyState, ModuleState

# pydantic-core runs patterns on Rust's regex engine, whose "$" is the end of the text only (not
# before a final "\n" as in Python's re): a name ending in "\n" is a 422, pinned by
# tests/e2e/test_rest_token_and_input_limits.py. The domain checks the same names with fullmatch.
MODULE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}(\.[a-z0-9][a-z0-9_-]{0,62}){1,3}$"
AlgorithmLabel = Literal["AES-256-GCM", "AES-256-SIV"]


class ModuleIn(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "global.payroll",
                    "algorithm": "AES-256-GCM",
                    "default_access": "reject",
                    "description": "salaries and bank details",
                }
            ]
        }
    )

    name: str = Field(
        pattern=MODULE_NAME_PATTERN,
        max_length=255,
        description="scoped, lower-case: 2-4 dot-separated parts",
    )
    algorithm: AlgorithmLabel = Field(
        default="AES-256-GCM",
        description="AES-256-SIV is deterministic (equal values, equal ciphertexts)",
    )
    external_wrap: bool = Field(
        default=True,
        description="`true`: DEKs under the external key chain (disabling the external key stops "
        "the module); `false`: under the local KEK (serves through an external key outage, "
        "and cannot be revoked by the customer disabling the external key)",
    )
    default_access: AccessResult = Field(
        default=AccessResult.REJECT, description="what decides when no policy matches"
    )
    state: ModuleState = ModuleState.PUBLISHED
    description: str = Field(default="", max_length=1024)
    rotation_period_days: int | None = Field(
        default=None, ge=1, le=3650, description="rotate the active key after this many days"
    )
    destroy_deactivated_after_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="destroy deactivated versions this long after deactivation (off if unset)",
    )

    def to_input(self) -> ModuleInput:
        return ModuleInput(
            name=self.name,
            algorithm=Algorithm.from_label(self.algorithm),
            external_wrap=self.external_wrap,
            default_access=self.default_access,
            state=self.state,
            description=self.description,
            rotation_period=_days(self.rotation_period_days),
            destroy_deactivated_after=_days(self.destroy_deactivated_after_days),
        )


def _days(days: int | None) -> timedelta | None:
    return None if days is None else timedelta(days=days)


def _in_days(period: timedelta | None) -> int | None:
    return None if period is None else period.days


class ModulePatch(InputModel):
    """Fields left out keep their value. A published module cannot go back to draft."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"default_access": "track"}]})

    description: str | None = Field(default=None, max_length=1024)
    default_access: AccessResult | None = None
    state: ModuleState | None = None
    rotation_period_days: int | None = Field(default=None, ge=1, le=3650)
    destroy_deactivated_after_days: int | None = Field(default=None, ge=1, le=3650)
    external_wrap: bool | None = Field(
        default=None,
        description="move the module's DEKs between the external key chain and the local KEK "
        "(a rewrap, audited; both must serve)",
    )

    def automation(self) -> dict[str, timedelta | None]:
        """The lifecycle settings the caller sent (null turns one off)."""
        sent = self.model_fields_set
        return {
            domain: _days(getattr(self, field))
            for field, domain in (
                ("rotation_period_days", "rotation_period"),
                ("destroy_deactivated_after_days", "destroy_deactivated_after"),
            )
            if field in sent
        }


class ModuleOut(BaseModel):
    id: uuid.UUID
    name: str
    algorithm: AlgorithmLabel
    external_wrap: bool
    default_access: AccessResult
    state: ModuleState
    description: str
    rotation_period_days: int | None
    destroy_deactivated_after_days: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, module: CryptoModule) -> ModuleOut:
        return cls(
            id=module.id,
            name=module.name,
            algorithm=module.algorithm.label,
            external_wrap=module.external_wrap,
            default_access=module.default_access,
            state=module.state,
            description=module.description,
            rotation_period_days=_in_days(module.rotation_period),
            destroy_deactivated_after_days=_in_days(module.destroy_deactivated_after),
            created_at=module.created_at,
            updated_at=module.updated_at,
        )


class KeyActionIn(InputModel):
    """Why: required to revoke, optional to suspend, resume or destroy."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "laptop with a cached token was stolen"}]}
    )

    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=STATE_REASON_MAX,
        description="printable text on one line, kept on the version and in the audit",
    )


class KeyVersionOut(BaseModel):
    """One data key version: its state and dates. The key itself is never shown."""

    module: str
    version: int
    state: KeyState
    kek_id: uuid.UUID | None = Field(description="the KEK this version is wrapped under")
    has_key_material: bool = Field(description="false once destroyed")
    suspended_from: KeyState | None
    encryption_count: int
    near_nonce_limit: bool
    created_at: datetime
    activated_at: datetime | None
    deactivated_at: datetime | None
    state_changed_at: datetime | None
    destroyed_at: datetime | None
    state_reason: str | None = Field(
        description="the reason given with the action that put it in its current state"
    )

    @classmethod
    def of(cls, module: str, key: ModuleKey) -> KeyVersionOut:
        return cls(
            module=module,
            version=key.version,
            state=key.state,
            kek_id=key.kek_id,
            has_key_material=key.wrapped_dek is not None,
            suspended_from=key.suspended_from,
            encryption_count=key.encryption_count,
            near_nonce_limit=key.near_nonce_limit,
            created_at=key.created_at,
            activated_at=key.activated_at,
            deactivated_at=key.deactivated_at,
            state_changed_at=key.state_changed_at,
            destroyed_at=key.destroyed_at,
            state_reason=key.state_reason,
        )
