"""AES-256-GCM under an XKS key, as the XKS Proxy API v1 lays it out.

Encrypt answers the ciphertext, a 12-byte IV and the 16-byte tag apart, plus
``ciphertextMetadata`` = ``CIPHERTEXT_METADATA`` (a version marker: ``ekms-xks-v1``). The AAD
given to AES-GCM is the spec's recommended encoding, lengths included so that metadata cannot
be moved into the AAD or back:

    2-byte big-endian len(additionalAuthenticatedData) || additionalAuthenticatedData
    || 1-byte len(ciphertextMetadata) || ciphertextMetadata

The CDIV (spec Appendix C) is SHA-256 over aad || metadata || iv || ciphertext || tag, computed
before the round-trip check. Every failed decrypt is the one opaque ``DecryptionFailed``.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.domain.errors import DecryptionFailed

XKS_KEY_SIZE = 32
IV_SIZE = 12
TAG_SIZE = 16
IV_SIZES = frozenset({12, 16})
CIPHERTEXT_METADATA = b"ekms-xks-v1"
MAX_METADATA = 20
MAX_AAD = 0xFFFF


@dataclass(frozen=True, slots=True)
class XksCiphertext:
    ciphertext: bytes
    initialization_vector: bytes
    authentication_tag: bytes
    metadata: bytes = CIPHERTEXT_METADATA


def gcm_aad(aad: bytes | None, metadata: bytes | None) -> bytes:
    aad, metadata = aad or b"", metadata or b""
    if len(aad) > MAX_AAD or len(metadata) > MAX_METADATA:
        raise DecryptionFailed()
    return struct.pack(">H", len(aad)) + aad + bytes([len(metadata)]) + metadata


def cdiv_sha256(aad: bytes | None, out: XksCiphertext) -> bytes:
    """The Ciphertext Data Integrity Value of an encrypt answer (spec Appendix C)."""
    parts = (
        aad or b"",
        out.metadata,
        out.initialization_vector,
        out.ciphertext,
        out.authentication_tag,
    )
    return hashlib.sha256(b"".join(parts)).digest()


class XksKeyMaterial:
    """One unwrapped XKS key. Its bytes live only in the AES-GCM object; the repr hides them."""

    __slots__ = ("_aead", "key_id")

    def __init__(self, key_id: str, key: bytes) -> None:
        if len(key) != XKS_KEY_SIZE:
            raise ValueError("an XKS key is 32 bytes")
        self.key_id = key_id
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"XksKeyMaterial(key_id={self.key_id!r})"

    def encrypt(self, plaintext: bytes, aad: bytes | None, iv: bytes) -> XksCiphertext:
        sealed = self._aead.encrypt(iv, plaintext, gcm_aad(aad, CIPHERTEXT_METADATA))
        return XksCiphertext(sealed[:-TAG_SIZE], iv, sealed[-TAG_SIZE:])

    def decrypt(self, data: XksCiphertext, aad: bytes | None) -> bytes:
        if (
            len(data.initialization_vector) not in IV_SIZES
            or len(data.authentication_tag) != TAG_SIZE
        ):
            raise DecryptionFailed()
        try:
            return self._aead.decrypt(
                data.initialization_vector,
                data.ciphertext + data.authentication_tag,
                gcm_aad(aad, data.metadata),
            )
        except InvalidTag:
            raise DecryptionFailed() from None
