"""The external KMS: one root key (``KeyManagementService``), the connector that opens it, and
the meter that tells "the KMS did not answer" from "ekms was too busy to hear it"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from app.domain.errors import InvalidInput, Reason
from app.domain.values import ExternalKeyStatus, KmsProvider

MAX_KEY_TO_WRAP = 4096
"""The most bytes ``wrap`` takes, whatever the provider (AWS KMS Encrypt's plaintext limit), so
every provider accepts the same input."""


def check_key_to_wrap(key_to_wrap: object) -> None:
    """``InvalidInput`` unless ``key_to_wrap`` is 1 to ``MAX_KEY_TO_WRAP`` bytes: each adapter's
    ``wrap`` checks this first."""
    if not isinstance(key_to_wrap, bytes) or not 1 <= len(key_to_wrap) <= MAX_KEY_TO_WRAP:
        raise InvalidInput(f"key_to_wrap must be 1 to {MAX_KEY_TO_WRAP} bytes")


@dataclass(frozen=True, slots=True)
class ExternalKeyRef:
    """Which external key: opaque to ekms, read only by its provider's adapter.

    ``key_id`` is the provider's own name for the key (an AWS key id, alias or ARN; a PKCS#11
    key label; a KMIP unique identifier). ``location`` is where within the provider, for the
    providers that have one (an AWS region); ``None`` means the adapter's default. Where the
    provider's server lives is the adapter's server setting, never data.
    """

    provider: KmsProvider
    key_id: str
    location: str | None = None


@dataclass(frozen=True, slots=True)
class KmsWrapped:
    """A key wrapped by the external key. ``key_name`` is the provider's full name of the key
    (and version, where the provider has versions) that wrapped it: an AWS key ARN, an RFC 7512
    PKCS#11 URI, a ``kmip://`` URI. ekms stores and shows it, never parses it."""

    ciphertext: bytes = field(repr=False)
    key_name: str


@dataclass(frozen=True, slots=True)
class ExternalKeyDescription:
    """What the provider said of the key, mapped to our states; ``key_name`` as in
    ``KmsWrapped``. ``reason`` explains UNAVAILABLE; ``reason_code`` says which kind: a
    refusal (``EXTERNAL_KEY_ACCESS_DENIED``, fails closed at once) or no answer
    (``KMS_UNAVAILABLE`` / ``KMS_THROTTLED``, retried, then the grace period).
    """

    status: ExternalKeyStatus
    key_name: str | None = None
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
    """One external root key, of any provider (AWS KMS, a PKCS#11 token, a KMIP server, the
    local root key): wrap, unwrap, rewrap to the current key material, describe its state and
    read its rotation marker.

    Errors: ``KeyUnavailable`` with reason EXTERNAL_KEY_DISABLED, _PENDING_DELETION, _DELETED
    or _UNAVAILABLE (access denied); ``ServiceUnavailable`` for network failures and throttling;
    ``DecryptionFailed`` when the KMS refuses a ciphertext or context.
    """

    ref: ExternalKeyRef

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped: ...

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes: ...

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        """Wrap again under the key's current material. The plaintext never reaches ekms's
        code: AWS does it in one ReEncrypt; an HSM or KMIP adapter unwraps and wraps inside
        its own call."""
        ...

    async def describe(self) -> ExternalKeyDescription:
        """The key's state. Never raises for it: a key that is gone maps to DELETED, a refusal,
        missing credentials and network failures to UNAVAILABLE with a reason."""
        ...

    async def rotation_state(self) -> RotationState:
        """The rotation marker (and history): a new marker means new key material, so the
        EKEK is due a rewrap."""
        ...


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
