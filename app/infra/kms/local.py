"""The local KMS: AES-256-GCM under a root key held by this process (development, on-premise).

This is NOT an external KMS: nobody outside the process can disable or revoke the root key, so
ekms's "the customer pulls the plug" guarantees do not hold with it.

Wrapped format v1::

    b"ekms-local\\x01" || nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes)

AAD = the format header || key id || NUL || canonical JSON of the context (sorted keys, ASCII).
Canonical JSON never contains a raw NUL, so the AAD is unambiguous; a wrong key id or context
fails to verify like any tampering, with ``DecryptionFailed``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.application.ports import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsWrapped,
    RotationState,
)
from app.domain.errors import DecryptionFailed, InvalidInput
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.kms.local_root_key import (
    check_root_key,
    derive,
    load_local_root_key,
    root_key_fingerprint,
)

__all__ = ["LocalKms", "LocalKmsConnector", "load_local_root_key"]

FORMAT_HEADER = b"ekms-local\x01"
NONCE_SIZE = 12
TAG_SIZE = 16
MAX_KEY_TO_WRAP = 4096  # same limit as AWS KMS Encrypt, so both providers accept the same input

log = structlog.get_logger(__name__)


class LocalKms(KeyManagementService):
    """One key under the local root key. ``ref.key_id`` is bound into every ciphertext."""

    def __init__(self, ref: ExternalKeyRef, root_key: bytes) -> None:
        check_root_key(root_key)
        self.ref = ref
        self._aead = AESGCM(derive(root_key, b"ekms-local/wrap/v1", 32))
        self._fingerprint = root_key_fingerprint(root_key)

    def __repr__(self) -> str:
        return f"LocalKms(ref={self.ref!r}, root_key_fingerprint={self._fingerprint!r})"

    @property
    def key_arn(self) -> str:
        return f"local:{self._fingerprint}"

    def _aad(self, context: Mapping[str, str]) -> bytes:
        canonical = json.dumps(dict(context), sort_keys=True, separators=(",", ":"))
        return FORMAT_HEADER + self.ref.key_id.encode("utf-8") + b"\x00" + canonical.encode()

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        if not isinstance(key_to_wrap, bytes) or not 1 <= len(key_to_wrap) <= MAX_KEY_TO_WRAP:
            raise InvalidInput(f"key_to_wrap must be 1 to {MAX_KEY_TO_WRAP} bytes")
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, key_to_wrap, self._aad(context))
        return KmsWrapped(ciphertext=FORMAT_HEADER + nonce + sealed, key_arn=self.key_arn)

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        if not isinstance(wrapped, bytes):
            raise InvalidInput("wrapped key must be bytes")
        body = wrapped[len(FORMAT_HEADER) :]
        if not wrapped.startswith(FORMAT_HEADER) or len(body) < NONCE_SIZE + TAG_SIZE + 1:
            raise DecryptionFailed()
        try:
            return self._aead.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], self._aad(context))
        except InvalidTag as exc:
            raise DecryptionFailed() from exc

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        """Unwrap and wrap again with a fresh nonce (the root key itself never rotates)."""
        return await self.wrap(await self.unwrap(wrapped, context), context)

    async def describe(self) -> ExternalKeyDescription:
        return ExternalKeyDescription(
            status=ExternalKeyStatus.ENABLED, key_arn=self.key_arn, rotation_enabled=False
        )

    async def rotation_state(self) -> RotationState:
        return RotationState(
            marker=f"local:{self._fingerprint}", rotation_enabled=False, rotation_count=0
        )


class LocalKmsConnector:
    """Opens ``LocalKms`` for local key references. Warns once, when built, that the root key
    is not an external KMS."""

    __slots__ = ("_root_key", "_fingerprint")

    def __init__(self, root_key: bytes) -> None:
        self._root_key = check_root_key(root_key)
        self._fingerprint = root_key_fingerprint(root_key)
        log.warning(
            "local_root_key_in_use",
            root_key_fingerprint=self._fingerprint,
            detail=(
                "the local root key is NOT an external KMS: nothing outside this process can "
                "disable or revoke it; use it for development or on-premise installations only"
            ),
        )

    def __repr__(self) -> str:
        return f"LocalKmsConnector(root_key_fingerprint={self._fingerprint!r})"

    def connect(self, ref: ExternalKeyRef) -> LocalKms:
        if ref.provider is not KmsProvider.LOCAL:
            raise InvalidInput(f"not a local key reference ({ref.provider.value})")
        return LocalKms(ref, self._root_key)

    def endpoint(self, ref: ExternalKeyRef) -> str:
        return f"local root key (fingerprint {self._fingerprint}), in this process"

    async def aclose(self) -> None:
        """Nothing to close; present for the ``KmsConnector`` port."""
