"""The external KMS: one root key (``KeyManagementService``), the connector that opens it, and
the meter that tells "the KMS did not answer" from "ekms was too busy to hear it"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from app.domain.errors import Reason
from app.domain.values import ExternalKeyStatus, KmsProvider


@dataclass(frozen=True, slots=True)
class ExternalKeyRef:
    """Which external key. Where its KMS lives is the adapter's server setting, never data."""

    provider: KmsProvider
    key_id: str
    region: str | None = None


@dataclass(frozen=True, slots=True)
class KmsWrapped:
    ciphertext: bytes = field(repr=False)
    key_arn: str


@dataclass(frozen=True, slots=True)
class ExternalKeyDescription:
    """What DescribeKey said, mapped to our states. ``reason`` explains UNAVAILABLE;
    ``reason_code`` says which kind: a refusal (``EXTERNAL_KEY_ACCESS_DENIED``, fails closed at
    once) or no answer (``KMS_UNAVAILABLE`` / ``KMS_THROTTLED``, retried, then the grace period).
    """

    status: ExternalKeyStatus
    key_arn: str | None = None
    deletion_date: datetime | None = None
    rotation_enabled: bool | None = None
    reason: str | None = None
    reason_code: Reason | None = None

    @property
    def no_answer(self) -> bool:
        """UNAVAILABLE because the KMS did not answer (timeout, connection, throttling)."""
        return self.reason_code in (Reason.KMS_UNAVAILABLE, Reason.KMS_THROTTLED)


@dataclass(frozen=True, slots=True)
class RotationState:
    """The external key's rotation history, as a comparable marker.

    ``marker`` changes exactly when the key material changes (a new rotation), so comparing it
    with the marker stored on the EKEK tells whether a rewrap is due.
    """

    marker: str
    rotation_enabled: bool
    rotation_count: int
    last_rotation: datetime | None = None


class KeyManagementService(Protocol):
    """One external root key (AWS KMS, or the local root key).

    Errors: ``KeyUnavailable`` with reason EXTERNAL_KEY_DISABLED, _PENDING_DELETION, _DELETED
    or _UNAVAILABLE (access denied); ``ServiceUnavailable`` for network failures and throttling;
    ``DecryptionFailed`` when the KMS refuses a ciphertext or context.
    """

    ref: ExternalKeyRef

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped: ...

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        """Re-encrypt under the key's current material (KMS ReEncrypt), plaintext never leaves."""
        ...

    async def describe(self) -> ExternalKeyDescription:
        """Never raises for the key's own state: NotFound maps to DELETED, access denied, missing
        credentials and network failures to UNAVAILABLE with a reason."""
        ...

    async def rotation_state(self) -> RotationState: ...


class KmsConnector(Protocol):
    """Opens the KMS for a configured key. Long-lived clients are pooled by the adapter."""

    def connect(self, ref: ExternalKeyRef) -> KeyManagementService: ...

    def endpoint(self, ref: ExternalKeyRef) -> str:
        """Where calls for ``ref`` go, for status (a URL, or what the local root key is)."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StallMark:
    stalled: float
    at: float


class StallMeter(Protocol):
    """How long the loop that runs KMS calls wanted to run and could not (ekms too busy)."""

    def mark(self) -> StallMark: ...

    def stalled_since(self, mark: StallMark) -> float: ...
