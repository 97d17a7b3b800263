"""The wrapped-key format of the KMIP provider, and its context binding.

Wrapped format v1::

    b"ekms-kmip\\x01" || uid length (2 bytes, big-endian) || uid (UTF-8)
                      || nonce (12 bytes) || tag (16 bytes) || ciphertext

``uid`` names the KMIP key that encrypted it: the configured key, or a key that replaced it
through ReKey (its Replacement Object Link chain). The server encrypts with AES-256-GCM::

    AAD       = header || canonical JSON of [configured key id, uid, context]
    plaintext = SHA-256(AAD) || key to wrap

The AAD binds the context, the configured key and the encrypting key, as AWS KMS binds an
EncryptionContext and a KeyId: the server refuses another context with its GCM tag check. The
digest inside the plaintext binds them a second time, checked here after Decrypt (in constant
time): a server that dropped the AAD (PyKMIP does, silently, when spoken to in KMIP < 1.4) still
cannot hand back a key for a context it was not wrapped under. Canonical JSON (sorted keys,
ASCII) of a list is unambiguous, so no two (key, uid, context) triples share an AAD.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.domain.errors import DecryptionFailed

FORMAT_HEADER = b"ekms-kmip\x01"
NONCE_SIZE = 12
TAG_SIZE = 16
DIGEST_SIZE = 32
MAX_UID_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Sealed:
    uid: str
    nonce: bytes
    tag: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        uid = self.uid.encode("utf-8")
        return b"".join(
            (FORMAT_HEADER, len(uid).to_bytes(2, "big"), uid, self.nonce, self.tag, self.ciphertext)
        )


def parse(wrapped: bytes) -> Sealed:
    """``DecryptionFailed`` for anything that is not a v1 blob (one opaque error)."""
    if not wrapped.startswith(FORMAT_HEADER):
        raise DecryptionFailed()
    at = len(FORMAT_HEADER)
    size = int.from_bytes(wrapped[at : at + 2], "big")
    at += 2
    if not 1 <= size <= MAX_UID_BYTES or len(wrapped) < at + size + NONCE_SIZE + TAG_SIZE + 1:
        raise DecryptionFailed()
    try:
        uid = wrapped[at : at + size].decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionFailed() from None
    at += size
    nonce, at = wrapped[at : at + NONCE_SIZE], at + NONCE_SIZE
    tag, at = wrapped[at : at + TAG_SIZE], at + TAG_SIZE
    return Sealed(uid=uid, nonce=nonce, tag=tag, ciphertext=wrapped[at:])


def aad(configured_key_id: str, uid: str, context: Mapping[str, str]) -> bytes:
    canonical = json.dumps(
        [configured_key_id, uid, dict(context)], sort_keys=True, separators=(",", ":")
    )
    return FORMAT_HEADER + canonical.encode("ascii")


def seal_plaintext(aad_bytes: bytes, key_to_wrap: bytes) -> bytes:
    return hashlib.sha256(aad_bytes).digest() + key_to_wrap


def open_plaintext(aad_bytes: bytes, plaintext: bytes) -> bytes:
    """The wrapped key, after checking the digest of the AAD that leads the plaintext."""
    expected = hashlib.sha256(aad_bytes).digest()
    if len(plaintext) <= DIGEST_SIZE or not hmac.compare_digest(plaintext[:DIGEST_SIZE], expected):
        raise DecryptionFailed()
    return plaintext[DIGEST_SIZE:]
