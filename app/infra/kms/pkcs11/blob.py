"""The wrapped-key format of the PKCS#11 provider, and the AAD that binds it to its context.

Wrapped format v1::

    version (1 byte, 0x01)
    || n (1 byte) || CKA_ID of the key object that wrapped it (n bytes, 0 to 255)
    || IV (12 bytes) || AES-GCM ciphertext (as long as the wrapped key) || tag (16 bytes)

The IV is random (``secrets``, 96 bits) and new for every wrap; the HSM computes the
ciphertext and tag (C_Encrypt with CKM_AES_GCM), the wrapping key never leaves it.

AAD = ``b"ekms-pkcs11"`` || the header (version || n || CKA_ID)
      || len(label) (4 bytes, big-endian) || label (the key's CKA_LABEL, UTF-8)
      || the encoded context

The encoded context is the mapping in a canonical, order-free form, as AWS KMS binds an
EncryptionContext: the number of pairs (4 bytes, big-endian), then for each pair sorted by the
UTF-8 bytes of its key: len(key) (4 bytes) || key || len(value) (4 bytes) || value, all UTF-8.
Every field is length-prefixed, so two different contexts never encode alike. A wrong label,
version, key object or context fails to verify like any tampering: ``DecryptionFailed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.domain.errors import DecryptionFailed, InvalidInput

VERSION = 1
IV_SIZE = 12
TAG_SIZE = 16
TAG_BITS = TAG_SIZE * 8
MAX_ID_SIZE = 255
_AAD_PREFIX = b"ekms-pkcs11"


@dataclass(frozen=True, slots=True)
class WrappedBlob:
    key_id: bytes  # CKA_ID of the wrapping key object
    iv: bytes
    sealed: bytes = field(repr=False)  # ciphertext || tag

    @property
    def header(self) -> bytes:
        return bytes([VERSION, len(self.key_id)]) + self.key_id

    def encode(self) -> bytes:
        return self.header + self.iv + self.sealed


def parse(wrapped: bytes) -> WrappedBlob:
    """The blob's fields; ``DecryptionFailed`` for anything that is not a v1 blob."""
    if not isinstance(wrapped, bytes):
        raise InvalidInput("wrapped key must be bytes")
    if len(wrapped) < 2 or wrapped[0] != VERSION:
        raise DecryptionFailed()
    n = wrapped[1]
    body = wrapped[2 + n :]
    if len(body) < IV_SIZE + TAG_SIZE + 1:
        raise DecryptionFailed()
    return WrappedBlob(key_id=wrapped[2 : 2 + n], iv=body[:IV_SIZE], sealed=body[IV_SIZE:])


def aad(blob_header: bytes, label: str, context: Mapping[str, str]) -> bytes:
    name = label.encode("utf-8")
    return _AAD_PREFIX + blob_header + _u32(len(name)) + name + encode_context(context)


def encode_context(context: Mapping[str, str]) -> bytes:
    pairs = []
    for key, value in context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput("the encryption context maps strings to strings")
        try:
            pairs.append((key.encode("utf-8"), value.encode("utf-8")))
        except UnicodeEncodeError:
            raise InvalidInput("the encryption context must be valid Unicode") from None
    pairs.sort()
    out = [_u32(len(pairs))]
    for key_bytes, value_bytes in pairs:
        out += [_u32(len(key_bytes)), key_bytes, _u32(len(value_bytes)), value_bytes]
    return b"".join(out)


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")
