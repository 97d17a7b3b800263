"""Ports of the external key store (XKS proxy): its two repositories and the SigV4 check."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from app.domain.xks import XksKey, XksStore


class XksStoreRepository(Protocol):
    async def list(self) -> Sequence[XksStore]: ...

    async def get(self, store_id: uuid.UUID) -> XksStore | None: ...

    async def add(self, store: XksStore) -> None:
        """``AlreadyExists`` when the name or the URI prefix is taken."""
        ...

    async def save(self, store: XksStore) -> None:
        """Update by id if ``revision`` matches, then bump it; else ``Conflict``."""
        ...

    async def delete(self, store_id: uuid.UUID) -> None:
        """The store and its keys. Idempotent."""
        ...


class XksKeyRepository(Protocol):
    async def list(self) -> Sequence[XksKey]: ...

    async def get(self, key_id: uuid.UUID) -> XksKey | None: ...

    async def add(self, key: XksKey) -> None:
        """``AlreadyExists`` when the store has that external key id already."""
        ...

    async def save(self, key: XksKey) -> None:
        """Update by id if ``revision`` matches, then bump it; else ``Conflict``."""
        ...

    async def delete(self, key_id: uuid.UUID) -> None:
        """Idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """An HTTP request as received, for SigV4 verification: method, the raw path, the
    headers (lower-case names) and the body bytes."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class SigV4Claim:
    """What the ``Authorization`` header claims: parsed, not yet verified."""

    access_key_id: str
    date: str  # YYYYMMDD of the credential scope
    region: str
    service: str
    amz_date: str  # the X-Amz-Date header, YYYYMMDD'T'HHMMSS'Z'


class SigV4Verifier(Protocol):
    """Checks an AWS Signature Version 4 over a received request."""

    def claim(self, request: SignedRequest) -> SigV4Claim:
        """The parsed claim; ``XksRejected(AuthenticationFailedException)`` if malformed."""
        ...

    def verify(self, request: SignedRequest, claim: SigV4Claim, secret: str) -> None:
        """Raise ``XksRejected(AuthenticationFailedException)`` unless the signature is the
        one ``secret`` makes over the request (compared in constant time)."""
        ...


class XksHsm(Protocol):
    """AES-256 keys resident in a PKCS#11 token for the XKS proxy (``Pkcs11XksHsm``). Each
    key is one secret-key object named by its label: generated in the token (sensitive,
    non-extractable), used there with CKM_AES_GCM, never read out. Errors are the ekms tree
    (``ServiceUnavailable`` when the token is away, ``KeyUnavailable`` when the object is gone
    or refuses); a ciphertext the token will not open is the one ``DecryptionFailed``."""

    async def generate(self, label: str) -> None:
        """A new AES-256 token object named ``label``."""
        ...

    async def encrypt(self, label: str, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """AES-GCM in the token with this IV and AAD: the ciphertext followed by the
        16-byte tag."""
        ...

    async def decrypt(self, label: str, iv: bytes, sealed: bytes, aad: bytes) -> bytes:
        """The plaintext of ``sealed`` (ciphertext || tag); ``DecryptionFailed`` otherwise."""
        ...

    async def destroy(self, label: str) -> bool:
        """Destroy the object(s) named ``label``; ``False`` if there was none."""
        ...
