"""The AES-GCM of one XKS key, wherever its material is: ``ChainCipher`` (unsealed from the
KEK into this process) or ``HsmCipher`` (resident in the PKCS#11 token, which computes it).
Both lay the call out as ``app.domain.xks_crypto`` says: the same AAD encoding, IV and tag
handling, so only where the AES runs differs."""

from __future__ import annotations

from typing import Protocol

from app.application.ports import XksHsm
from app.domain.errors import DecryptionFailed, EkmsError, ServiceUnavailable
from app.domain.xks import XksErrorName, XksRejected
from app.domain.xks_crypto import (
    CIPHERTEXT_METADATA,
    IV_SIZES,
    TAG_SIZE,
    XksCiphertext,
    XksKeyMaterial,
    gcm_aad,
)


class XksCipher(Protocol):
    async def encrypt(self, plaintext: bytes, aad: bytes | None, iv: bytes) -> XksCiphertext: ...

    async def decrypt(self, data: XksCiphertext, aad: bytes | None) -> bytes:
        """The plaintext, or the one opaque ``DecryptionFailed``."""
        ...


class ChainCipher:
    __slots__ = ("_material",)

    def __init__(self, material: XksKeyMaterial) -> None:
        self._material = material

    def __repr__(self) -> str:
        return f"ChainCipher({self._material!r})"

    async def encrypt(self, plaintext: bytes, aad: bytes | None, iv: bytes) -> XksCiphertext:
        return self._material.encrypt(plaintext, aad, iv)

    async def decrypt(self, data: XksCiphertext, aad: bytes | None) -> bytes:
        return self._material.decrypt(data, aad)


def _hsm_failed(exc: EkmsError) -> XksRejected:
    # The token away or the object gone: the spec's dependency and state errors. The message
    # names the failure class only (never a PIN, never data).
    if isinstance(exc, ServiceUnavailable):
        return XksRejected(XksErrorName.DEPENDENCY_TIMEOUT, "the HSM did not answer")
    return XksRejected(XksErrorName.INVALID_STATE, "the key's HSM object cannot be used")


class HsmCipher:
    """A key resident in the HSM: the token computes AES-GCM under the object ``label``."""

    __slots__ = ("_hsm", "label")

    def __init__(self, hsm: XksHsm, label: str) -> None:
        self._hsm = hsm
        self.label = label

    def __repr__(self) -> str:
        return f"HsmCipher(label={self.label!r})"

    async def encrypt(self, plaintext: bytes, aad: bytes | None, iv: bytes) -> XksCiphertext:
        try:
            sealed = await self._hsm.encrypt(
                self.label, iv, plaintext, gcm_aad(aad, CIPHERTEXT_METADATA)
            )
        except DecryptionFailed:
            raise XksRejected(XksErrorName.INTERNAL, "the HSM refused to encrypt") from None
        except EkmsError as exc:
            raise _hsm_failed(exc) from None
        if len(sealed) < TAG_SIZE:
            raise XksRejected(XksErrorName.INTERNAL, "the HSM answered no tag")
        return XksCiphertext(sealed[:-TAG_SIZE], iv, sealed[-TAG_SIZE:])

    async def decrypt(self, data: XksCiphertext, aad: bytes | None) -> bytes:
        if (
            len(data.initialization_vector) not in IV_SIZES
            or len(data.authentication_tag) != TAG_SIZE
        ):
            raise DecryptionFailed()
        gcm = gcm_aad(aad, data.metadata)  # DecryptionFailed for oversized fields
        try:
            return await self._hsm.decrypt(
                self.label,
                data.initialization_vector,
                data.ciphertext + data.authentication_tag,
                gcm,
            )
        except DecryptionFailed:
            raise
        except EkmsError as exc:
            raise _hsm_failed(exc) from None
