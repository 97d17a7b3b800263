"""Blind-index MACs, format v1: HMAC-SHA-256 under a key of one module key version.

Layout, all integers big-endian (the ciphertext v1 header with its own algorithm byte)::

    offset  size  field
    0       1     format version, 0x01
    1       1     algorithm: 0x03 HMAC-SHA-256
    2       16    module id (UUID bytes)
    18      4     key version (uint32, >= 1)
    22      32    tag = HMAC-SHA-256(mac key, header || u16 len(binding) || binding
                                              || u32 len(context) || context || value)

The MAC key of a key version is derived from its DEK with HKDF-SHA-256 (empty salt, info
``"ekms/mac-key/v1|" || module id || u32 version``), so it is separate from the AEAD key (a
different label, a one-way derivation) and needs no storage of its own. The version travels in
the MAC, so a MAC made before a rotation still verifies after it.
"""

from __future__ import annotations

import hmac
import struct
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.domain.ciphertext import FORMAT_V1, HEADER, associated_data
from app.domain.errors import MacMismatch

HMAC_SHA256 = 0x03
TAG_SIZE = 32
MAC_SIZE = HEADER.size + TAG_SIZE  # 54
MAC_KEY_SIZE = 32
_KEY_LABEL = b"ekms/mac-key/v1|"


@dataclass(frozen=True, slots=True)
class MacHeader:
    """What a MAC names: its module and key version."""

    module_id: uuid.UUID
    key_version: int

    def pack(self) -> bytes:
        return HEADER.pack(FORMAT_V1, HMAC_SHA256, self.module_id.bytes, self.key_version)


def derive_mac_key(dek: bytes, module_id: uuid.UUID, version: int) -> bytes:
    """The HMAC key of one key version, derived from its DEK (see the module docstring)."""
    info = _KEY_LABEL + module_id.bytes + struct.pack(">I", version)
    return HKDF(hashes.SHA256(), MAC_KEY_SIZE, salt=None, info=info).derive(dek)


def compute(
    mac_key: bytes, header: MacHeader, binding: bytes, context: bytes, value: bytes
) -> bytes:
    """The MAC of ``value`` for this binding and context: header || tag."""
    header_bytes = header.pack()
    message = associated_data(header_bytes, binding, context) + value
    return header_bytes + hmac.digest(mac_key, message, "sha256")


def parse(mac: bytes) -> MacHeader:
    """The header of a MAC of format v1; ``MacMismatch`` for anything else."""
    if len(mac) != MAC_SIZE:
        raise MacMismatch()
    version, algorithm, module_id, key_version = HEADER.unpack_from(mac)
    if version != FORMAT_V1 or algorithm != HMAC_SHA256 or key_version < 1:
        raise MacMismatch()
    return MacHeader(uuid.UUID(bytes=module_id), key_version)


def verify(mac_key: bytes, mac: bytes, binding: bytes, context: bytes, value: bytes) -> None:
    """Raise ``MacMismatch`` unless ``mac`` is this value's MAC; compared in constant time."""
    expected = compute(mac_key, parse(mac), binding, context, value)
    if not hmac.compare_digest(expected, mac):
        raise MacMismatch()
