"""Bodies of /ekms/kek/rotate and DELETE /ekms/config."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.application.config_end import ConfigEnded
from app.application.kek import KekRotationResult


class KekRotationOut(BaseModel):
    old_kek_id: str
    new_kek_id: str
    new_fingerprint: str
    rewrapped_keys: int = Field(description="module key versions rewrapped under the new KEK")
    resealed_xks: int = Field(
        default=0, description="XKS keys and SigV4 secrets resealed under the new KEK"
    )

    @classmethod
    def of(cls, result: KekRotationResult) -> KekRotationOut:
        return cls(
            old_kek_id=result.old_kek_id,
            new_kek_id=result.new_kek_id,
            new_fingerprint=result.new_fingerprint,
            rewrapped_keys=result.rewrapped_keys,
            resealed_xks=result.resealed_xks,
        )


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
