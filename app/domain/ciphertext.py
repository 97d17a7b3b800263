"""Ciphertext format v1: binary (gRPC) and text (JSON) forms. See docs/ciphertext-format.md.

Binary layout, all integers big-endian::

    offset  size  field
    0       1     format version, 0x01
    1       1     algorithm: 0x01 AES-256-GCM, 0x02 AES-256-SIV
    2       16    module id (UUID bytes)
    18      4     key version (uint32, >= 1)
    22      ...   body. GCM: 12-byte nonce || ciphertext || 16-byte tag
                        SIV: 16-byte synthetic IV || ciphertext

Text form: ``ekms:v1:`` followed by the binary form in unpadded base64url. The text form is
canonical: ``from_text`` accepts only the one text ``to_text`` produces for those bytes, so the
unused low bits of the last character must be zero (else two texts would open to one value, and
equality search or a UNIQUE index on stored AES-SIV text could be bypassed).

Associated data (authenticated, not stored)::

    header (bytes 0..21) || u16 len(binding) || binding || u32 len(context) || context

where binding is ``field:<table>.<column>`` or ``module:<name>``, so a ciphertext copied to
another field, module or record context does not verify.
"""

from __future__ import annotations

import base64
import binascii
import struct
import uuid
from dataclasses import dataclass

from app.domain.errors import DecryptionFailed, InvalidInput
from app.domain.values import Algorithm, FieldRef

FORMAT_V1 = 0x01
HEADER = struct.Struct(">BB16sI")
HEADER_SIZE = HEADER.size  # 22
GCM_NONCE_SIZE = 12
TAG_SIZE = 16
TEXT_PREFIX = "ekms:v1:"
MAX_PLAINTEXT = 1 << 20
MAX_CONTEXT = 4096
_MIN_BODY = {Algorithm.AES_256_GCM: GCM_NONCE_SIZE + TAG_SIZE, Algorithm.AES_256_SIV: TAG_SIZE}


@dataclass(frozen=True, slots=True)
class Header:
    algorithm: Algorithm
    module_id: uuid.UUID
    key_version: int

    def pack(self) -> bytes:
        return HEADER.pack(FORMAT_V1, self.algorithm, self.module_id.bytes, self.key_version)


@dataclass(frozen=True, slots=True)
class Ciphertext:
    header: Header
    header_bytes: bytes
    body: bytes


def binding_for_field(ref: FieldRef) -> bytes:
    return f"field:{ref}".encode()


def binding_for_module(name: str) -> bytes:
    return f"module:{name}".encode()


def associated_data(header_bytes: bytes, binding: bytes, context: bytes) -> bytes:
    return b"".join(
        (
            header_bytes,
            struct.pack(">H", len(binding)),
            binding,
            struct.pack(">I", len(context)),
            context,
        )
    )


def associated_prefix(header_bytes: bytes, binding: bytes) -> bytes:
    """The part of the associated data that does not depend on the context: ``header || u16
    len(binding) || binding``. ``associated_prefix(h, b) + CONTEXT_LENGTH.pack(len(c)) + c`` is
    ``associated_data(h, b, c)``; batches build it once per (key version, target)."""
    return header_bytes + struct.pack(">H", len(binding)) + binding


CONTEXT_LENGTH = struct.Struct(">I")


def check_context(context: bytes) -> bytes:
    if len(context) > MAX_CONTEXT:
        raise InvalidInput(f"context is at most {MAX_CONTEXT} bytes", field="context")
    return context


def check_plaintext(plaintext: bytes) -> bytes:
    if len(plaintext) > MAX_PLAINTEXT:
        raise InvalidInput(f"plaintext is at most {MAX_PLAINTEXT} bytes", field="plaintext")
    return plaintext


def within_limits(plaintext: bytes, context: bytes) -> bool:
    """Whether ``check_plaintext`` and ``check_context`` would both pass: a test, no error."""
    return len(plaintext) <= MAX_PLAINTEXT and len(context) <= MAX_CONTEXT


def min_size(algorithm: Algorithm) -> int:
    """The length of the shortest ciphertext ``parse`` accepts for ``algorithm``."""
    return HEADER_SIZE + _MIN_BODY[algorithm]


def parse(blob: bytes) -> Ciphertext:
    """Split a binary ciphertext. Anything malformed is the one opaque DecryptionFailed."""
    if len(blob) < HEADER_SIZE:
        raise DecryptionFailed()
    version, alg, module_bytes, key_version = HEADER.unpack_from(blob)
    if version != FORMAT_V1 or alg not in _MIN_BODY or key_version == 0:
        raise DecryptionFailed()
    algorithm = Algorithm(alg)
    body = blob[HEADER_SIZE:]
    if len(body) < _MIN_BODY[algorithm]:
        raise DecryptionFailed()
    header = Header(algorithm, uuid.UUID(bytes=module_bytes), key_version)
    return Ciphertext(header, blob[:HEADER_SIZE], body)


def to_text(blob: bytes) -> str:
    return TEXT_PREFIX + base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii")


def from_text(text: str) -> bytes:
    """Decode the text form. A wrong prefix, bad base64 or any text other than the canonical
    ``to_text`` of its bytes (padding, stray characters, non-zero unused bits) is
    DecryptionFailed."""
    if not isinstance(text, str) or not text.startswith(TEXT_PREFIX):
        raise DecryptionFailed()
    payload = text[len(TEXT_PREFIX) :]
    try:
        raw = payload.encode("ascii")
        blob = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise DecryptionFailed() from None
    # Re-encoding is the whole canonical check: it refuses what the lenient decoder skipped
    # ("=", "+", "/", whitespace) as well as set low bits in the last character.
    if base64.urlsafe_b64encode(blob).rstrip(b"=") != raw:
        raise DecryptionFailed()
    return blob
