"""The XKS Proxy API v1 request bodies, parsed and checked as the specification defines them
(field names, base64, sizes). A malformed body is ``ValidationException``; GetHealthStatus
takes whatever metadata it is given (the spec lists no ValidationException for it)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from app.domain.xks import XksErrorName, XksOperation, XksRejected

MAX_ARN = 2048
MAX_PLAINTEXT = 64 * 1024  # the spec asks for 4300 bytes at least
MAX_AAD = 16 * 1024  # the spec asks for 8192 bytes at least
METADATA_FIELDS = (
    "awsPrincipalArn",
    "awsSourceVpc",
    "awsSourceVpce",
    "kmsKeyArn",
    "kmsOperation",
    "kmsRequestId",
    "kmsViaService",
)
_REQUIRED: dict[XksOperation, tuple[str, ...]] = {
    XksOperation.HEALTH: (),
    XksOperation.METADATA: ("awsPrincipalArn", "kmsOperation", "kmsRequestId"),
    XksOperation.ENCRYPT: ("awsPrincipalArn", "kmsKeyArn", "kmsOperation", "kmsRequestId"),
    XksOperation.DECRYPT: ("awsPrincipalArn", "kmsKeyArn", "kmsOperation", "kmsRequestId"),
}


def _invalid(message: str) -> XksRejected:
    return XksRejected(XksErrorName.VALIDATION, message)


@dataclass(frozen=True, slots=True)
class RequestMetadata:
    """``requestMetadata``: the fields the spec names, as given (others are ignored)."""

    fields: dict[str, str]

    @property
    def principal(self) -> str:
        return self.fields.get("awsPrincipalArn", "")

    @property
    def kms_operation(self) -> str:
        return self.fields.get("kmsOperation", "")

    def audit_pairs(self) -> tuple[tuple[str, str], ...]:
        return tuple((name, self.fields[name]) for name in METADATA_FIELDS if name in self.fields)


@dataclass(frozen=True, slots=True)
class EncryptRequest:
    plaintext: bytes = field(repr=False)
    aad: bytes | None
    cdiv: bool


@dataclass(frozen=True, slots=True)
class DecryptRequest:
    ciphertext: bytes
    aad: bytes | None
    metadata: bytes | None
    iv: bytes
    tag: bytes


def parse_body(body: bytes, operation: XksOperation) -> tuple[dict[str, Any], RequestMetadata]:
    """The JSON object and its checked ``requestMetadata``."""
    lenient = operation is XksOperation.HEALTH
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        if lenient:
            return {}, RequestMetadata({})
        raise _invalid("the body is not a JSON object")
    meta = data.get("requestMetadata")
    if not isinstance(meta, dict):
        if lenient:
            return data, RequestMetadata({})
        raise _invalid("requestMetadata is missing or not an object")
    fields: dict[str, str] = {}
    for name in METADATA_FIELDS:
        value = meta.get(name)
        if isinstance(value, str) and len(value) <= MAX_ARN:
            fields[name] = value
        elif value is not None and not lenient:
            raise _invalid(f"requestMetadata.{name} must be a string of at most {MAX_ARN}")
    missing = [name for name in _REQUIRED[operation] if name not in fields]
    if missing:
        raise _invalid(f"requestMetadata.{missing[0]} is required")
    return data, RequestMetadata(fields)


def _b64(data: dict[str, Any], name: str, *, required: bool, limit: int) -> bytes | None:
    value = data.get(name)
    if value is None:
        if required:
            raise _invalid(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise _invalid(f"{name} must be a Base64 string")
    too_big = XksRejected(
        XksErrorName.UNSUPPORTED_OPERATION, f"{name} is over {limit} bytes (this proxy's limit)"
    )
    if len(value) > (limit + 2) // 3 * 4:
        raise too_big  # before decoding: no large allocation for an oversized field
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{name} is not valid Base64") from None
    if len(decoded) > limit:
        raise too_big
    return decoded


def _algorithm(data: dict[str, Any]) -> None:
    if data.get("encryptionAlgorithm") != "AES_GCM":
        raise _invalid("encryptionAlgorithm must be AES_GCM")


def parse_encrypt(data: dict[str, Any]) -> EncryptRequest:
    _algorithm(data)
    plaintext = _b64(data, "plaintext", required=True, limit=MAX_PLAINTEXT)
    aad = _b64(data, "additionalAuthenticatedData", required=False, limit=MAX_AAD)
    cdiv = data.get("ciphertextDataIntegrityValueAlgorithm")
    if cdiv is not None and cdiv != "SHA_256":
        raise _invalid("ciphertextDataIntegrityValueAlgorithm must be SHA_256")
    assert plaintext is not None  # noqa: S101 - required=True
    return EncryptRequest(plaintext, aad, cdiv is not None)


def parse_decrypt(data: dict[str, Any]) -> DecryptRequest:
    _algorithm(data)
    ciphertext = _b64(data, "ciphertext", required=True, limit=MAX_PLAINTEXT)
    aad = _b64(data, "additionalAuthenticatedData", required=False, limit=MAX_AAD)
    metadata = _b64(data, "ciphertextMetadata", required=False, limit=64)
    iv = _b64(data, "initializationVector", required=True, limit=64)
    tag = _b64(data, "authenticationTag", required=True, limit=64)
    assert ciphertext is not None and iv is not None and tag is not None  # noqa: S101
    return DecryptRequest(ciphertext, aad, metadata, iv, tag)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
