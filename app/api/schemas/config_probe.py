"""The body of ``POST /ekms/config/test``: the probe's round trip through every external key."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, Field

from app.application.config_probe import KeyProbe, ProbeResult
from app.domain.values import ExternalKeyStatus


class KeyProbeOut(BaseModel):
    """The probe's round trip through one external key."""

    id: uuid.UUID
    ok: bool
    key_arn: str | None = Field(description="the provider's name of the key that wrapped it")
    status: ExternalKeyStatus
    latency_ms: float
    reason: str | None

    @classmethod
    def of(cls, probe: KeyProbe) -> KeyProbeOut:
        return cls(
            id=probe.key,
            ok=probe.ok,
            key_arn=probe.key_name,
            status=probe.status,
            latency_ms=round(probe.latency_ms, 3),
            reason=probe.reason,
        )


class ProbeOut(BaseModel):
    """The outcome of wrapping and unwrapping a random probe through every external key:
    ``ok`` when each round-trips; the flat fields are the first key's."""

    ok: bool
    key_arn: str | None
    status: ExternalKeyStatus
    latency_ms: float
    reason: str | None
    keys: list[KeyProbeOut] = Field(default_factory=list, description="each key, the first first")

    @classmethod
    def of(cls, result: ProbeResult) -> ProbeOut:
        return cls(
            ok=result.ok,
            key_arn=result.key_name,
            status=result.status,
            latency_ms=round(result.latency_ms, 3),
            reason=result.reason,
            keys=[KeyProbeOut.of(k) for k in result.keys],
        )
