"""AWS KMS external key stores (the XKS Proxy API v1): stores, their keys, and the names the
specification fixes.

An ``XksStore`` is one logical key store: the URI path prefix AWS calls under (the part before
``/kms/xks/v1``), the AWS region that signs its requests, and one or two SigV4 credentials
(access key id + secret sealed under the KEK; two while a rotation overlaps). An ``XksKey`` is
an AES-256 key of one store, addressed by AWS as ``externalKeyId``; its material is sealed
under the KEK too, so it stops with the chain when the external key is revoked.

``XksRejected`` is the proxy's one error: it carries the specification's ``errorName``; the
inbound adapter (``app/xks``) answers it with the specification's HTTP status.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

SPEC_SUFFIX = "/kms/xks/v1"
MAX_CREDENTIALS = 2  # the spec: at least two sets of SigV4 credentials per path prefix

_PREFIX = re.compile(r"(/[A-Za-z0-9_-]+)*")
_EXTERNAL_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ACCESS_KEY_ID = re.compile(r"[A-Z2-7]{20,30}")
_STORE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}")


class XksErrorName(StrEnum):
    """The specification's error names ("Error Codes"), every one of them."""

    VALIDATION = "ValidationException"
    INVALID_STATE = "InvalidStateException"
    INVALID_CIPHERTEXT = "InvalidCiphertextException"
    INVALID_KEY_USAGE = "InvalidKeyUsageException"
    AUTHENTICATION_FAILED = "AuthenticationFailedException"
    ACCESS_DENIED = "AccessDeniedException"
    KEY_NOT_FOUND = "KeyNotFoundException"
    INVALID_URI_PATH = "InvalidUriPathException"
    THROTTLING = "ThrottlingException"
    UNSUPPORTED_OPERATION = "UnsupportedOperationException"
    DEPENDENCY_TIMEOUT = "DependencyTimeoutException"
    INTERNAL = "InternalException"


class XksRejected(Exception):
    """An XKS call refused with one of the specification's errors. The message is printable
    ASCII under 512 characters (the spec's rule) and never holds key material or plaintext."""

    def __init__(self, name: XksErrorName, message: str) -> None:
        safe = "".join(c if " " <= c <= "~" else "?" for c in message)[:511]
        super().__init__(safe)
        self.name = name
        self.message = safe

    def __repr__(self) -> str:
        return f"XksRejected({self.name.value!r}, {self.message!r})"


class XksKeyUsage(StrEnum):
    ENCRYPT = "ENCRYPT"
    DECRYPT = "DECRYPT"


class XksKeyStatus(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


class XksKeyBackend(StrEnum):
    """Where a key's material lives: sealed in ekms's chain, or resident in the PKCS#11 HSM
    (generated there, non-extractable; the row holds only its object label, sealed)."""

    EKMS = "ekms"
    PKCS11 = "pkcs11"


class XksOperation(StrEnum):
    """The four XKS API operations (what ``kmsOperation`` rules and the audit name)."""

    HEALTH = "health"
    METADATA = "metadata"
    ENCRYPT = "encrypt"
    DECRYPT = "decrypt"


@dataclass(frozen=True, slots=True)
class XksCredential:
    """One SigV4 credential: the access key id AWS sends, the secret sealed under the KEK."""

    access_key_id: str
    sealed_secret: bytes = field(repr=False)
    kek_id: uuid.UUID
    created_at: datetime


@dataclass(slots=True)
class XksStore:
    id: uuid.UUID
    name: str
    uri_prefix: str  # "" or "/a/b": AWS's XksProxyUriPath is this + SPEC_SUFFIX
    region: str
    credentials: tuple[XksCredential, ...]
    created_at: datetime
    revision: int = 0

    @property
    def uri_path(self) -> str:
        return self.uri_prefix + SPEC_SUFFIX


@dataclass(slots=True)
class XksKey:
    id: uuid.UUID
    store_id: uuid.UUID
    external_key_id: str
    usage: frozenset[XksKeyUsage]
    status: XksKeyStatus
    sealed_key: bytes = field(repr=False)
    kek_id: uuid.UUID
    # Optional secondary authorisation: empty means any principal / any kmsOperation.
    allowed_principals: tuple[str, ...] = ()
    allowed_operations: tuple[str, ...] = ()
    created_at: datetime | None = None
    revision: int = 0
    backend: XksKeyBackend = XksKeyBackend.EKMS

    def allows(self, principal: str, kms_operation: str) -> bool:
        """The secondary authorisation on the request metadata (the spec's "Authorization")."""
        if self.allowed_principals and principal not in self.allowed_principals:
            return False
        return not (self.allowed_operations and kms_operation not in self.allowed_operations)


def valid_prefix(prefix: str) -> bool:
    """The spec: XksProxyUriPath at most 128 characters of a-z, A-Z, 0-9, '/', '-', '_'."""
    return (
        _PREFIX.fullmatch(prefix) is not None and len(prefix + SPEC_SUFFIX) <= 128
    ) and "/kms/xks/v1" not in prefix


def valid_external_key_id(key_id: str) -> bool:
    return _EXTERNAL_KEY_ID.fullmatch(key_id) is not None


def valid_access_key_id(access_key_id: str) -> bool:
    return _ACCESS_KEY_ID.fullmatch(access_key_id) is not None


def valid_store_name(name: str) -> bool:
    return _STORE_NAME.fullmatch(name) is not None


def valid_region(region: str) -> bool:
    return _REGION.fullmatch(region) is not None


def secret_binding(store_id: uuid.UUID, access_key_id: str) -> bytes:
    """What a sealed SigV4 secret is bound to: its store and its access key id."""
    return b"ekms/xks-secret/v1|" + store_id.bytes + access_key_id.encode("ascii")


def key_binding(key_id: uuid.UUID) -> bytes:
    """What a sealed XKS key is bound to: its own id."""
    return b"ekms/xks-key/v1|" + key_id.bytes


def hsm_binding(key_id: uuid.UUID) -> bytes:
    """What the sealed HSM object label of a ``pkcs11`` key is bound to: its own id (another
    purpose than ``key_binding``, so neither opens as the other)."""
    return b"ekms/xks-hsm-key/v1|" + key_id.bytes


def hsm_label(key_id: uuid.UUID) -> str:
    """The CKA_LABEL of a ``pkcs11`` key's object in the token."""
    return f"ekms-xks-{key_id}"


def sealed_binding(key: XksKey) -> bytes:
    """What ``key.sealed_key`` is bound to, by backend."""
    return hsm_binding(key.id) if key.backend is XksKeyBackend.PKCS11 else key_binding(key.id)
