"""Key material in memory: data keys that encrypt fields, and key wrapping under the KEK.

Plaintext key bytes live only inside these objects; their reprs never show them.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV

from app.domain import mac
from app.domain.ciphertext import (
    GCM_NONCE_SIZE,
    Ciphertext,
    Header,
    associated_data,
)
from app.domain.errors import DecryptionFailed
from app.domain.values import Algorithm

KEK_SIZE = 32
DEK_SIZE = {Algorithm.AES_256_GCM: 32, Algorithm.AES_256_SIV: 64}
WRAP_V1 = 0x01
_WRAP_MIN = 1 + GCM_NONCE_SIZE + 16
_FINGERPRINT_LABEL = b"ekms/kek-fingerprint/v1"


class DataKey:
    """One unwrapped DEK version, ready to encrypt and decrypt field values."""

    __slots__ = ("_aead", "_mac_key", "algorithm", "header", "header_bytes", "module_id", "version")

    def __init__(self, algorithm: Algorithm, module_id: uuid.UUID, version: int, key: bytes):
        if len(key) != DEK_SIZE[algorithm]:
            raise ValueError("data key has the wrong size for its algorithm")
        self.algorithm = algorithm
        self.module_id = module_id
        self.version = version
        self.header = Header(algorithm, module_id, version)
        self.header_bytes = self.header.pack()
        self._aead: AESGCM | AESSIV = (
            AESGCM(key) if algorithm is Algorithm.AES_256_GCM else AESSIV(key)
        )
        self._mac_key = mac.derive_mac_key(key, module_id, version)

    def __repr__(self) -> str:
        return (
            f"DataKey(module_id={self.module_id}, version={self.version}, "
            f"algorithm={self.algorithm.label})"
        )

    def encrypt(self, plaintext: bytes, binding: bytes, context: bytes, nonce: bytes) -> bytes:
        aad = associated_data(self.header_bytes, binding, context)
        if isinstance(self._aead, AESGCM):
            return self.header_bytes + nonce + self._aead.encrypt(nonce, plaintext, aad)
        return self.header_bytes + self._aead.encrypt(plaintext, [aad])

    def mac(self, binding: bytes, context: bytes, value: bytes) -> bytes:
        """The blind-index MAC of ``value`` under this version's MAC key (``app.domain.mac``)."""
        header = mac.MacHeader(self.module_id, self.version)
        return mac.compute(self._mac_key, header, binding, context, value)

    def verify_mac(self, tag: bytes, binding: bytes, context: bytes, value: bytes) -> None:
        """Raise ``MacMismatch`` unless ``tag`` is ``value``'s MAC under this version."""
        mac.verify(self._mac_key, tag, binding, context, value)

    def decrypt(self, ciphertext: Ciphertext, binding: bytes, context: bytes) -> bytes:
        aad = associated_data(ciphertext.header_bytes, binding, context)
        body = ciphertext.body
        try:
            if isinstance(self._aead, AESGCM):
                return self._aead.decrypt(body[:GCM_NONCE_SIZE], body[GCM_NONCE_SIZE:], aad)
            return self._aead.decrypt(body, [aad])
        except InvalidTag:
            raise DecryptionFailed() from None


def _dek_aad(module_id: uuid.UUID, version: int, kek_id: uuid.UUID) -> bytes:
    return b"ekms/dek/v1|" + module_id.bytes + struct.pack(">I", version) + kek_id.bytes


class KeyEncryptionKey:
    """The unwrapped KEK. Wraps DEKs bound to their module, version and this KEK's id."""

    __slots__ = ("_aead", "fingerprint", "id")

    def __init__(self, kek_id: uuid.UUID, key: bytes):
        if len(key) != KEK_SIZE:
            raise ValueError("key encryption key must be 32 bytes")
        self.id = kek_id
        self._aead = AESGCM(key)
        self.fingerprint = fingerprint(key)

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(id={self.id}, fingerprint={self.fingerprint})"

    def wrap(self, key_to_wrap: bytes, module_id: uuid.UUID, version: int, nonce: bytes) -> bytes:
        aad = _dek_aad(module_id, version, self.id)
        return bytes([WRAP_V1]) + nonce + self._aead.encrypt(nonce, key_to_wrap, aad)

    def unwrap(self, wrapped: bytes, module_id: uuid.UUID, version: int) -> bytes:
        if len(wrapped) < _WRAP_MIN or wrapped[0] != WRAP_V1:
            raise DecryptionFailed()
        nonce = wrapped[1 : 1 + GCM_NONCE_SIZE]
        try:
            return self._aead.decrypt(
                nonce, wrapped[1 + GCM_NONCE_SIZE :], _dek_aad(module_id, version, self.id)
            )
        except InvalidTag:
            raise DecryptionFailed() from None

    def seal(self, secret: bytes, binding: bytes, nonce: bytes) -> bytes:
        """Seal a secret that is not a DEK (an XKS key, a SigV4 secret), bound to ``binding``
        (which names what it is: ``app.domain.xks``) and to this KEK's id."""
        aad = b"ekms/sealed/v1|" + self.id.bytes + binding
        return bytes([WRAP_V1]) + nonce + self._aead.encrypt(nonce, secret, aad)

    def open_sealed(self, sealed: bytes, binding: bytes) -> bytes:
        if len(sealed) < _WRAP_MIN or sealed[0] != WRAP_V1:
            raise DecryptionFailed()
        nonce = sealed[1 : 1 + GCM_NONCE_SIZE]
        aad = b"ekms/sealed/v1|" + self.id.bytes + binding
        try:
            return self._aead.decrypt(nonce, sealed[1 + GCM_NONCE_SIZE :], aad)
        except InvalidTag:
            raise DecryptionFailed() from None


def fingerprint(kek: bytes) -> str:
    """A non-secret identifier of a KEK: HMAC-SHA256 of a fixed label, first 16 bytes, hex."""
    return hmac.new(kek, _FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:32]


def constant_time_equal(a: bytes | str, b: bytes | str) -> bool:
    a_bytes = a.encode() if isinstance(a, str) else a
    b_bytes = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a_bytes, b_bytes)
