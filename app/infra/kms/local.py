"""The local KMS: AES-256-GCM under a root key held by this process (development, on-premise).

This is NOT an external KMS: nobody outside the host can disable or revoke the root key, so
ekms's "the customer pulls the plug" guarantees do not hold with it. For development, the key
has states that ``ekms local-key disable|enable|delete`` sets (``local_state``): the adapter
reads the state on every call and enforces it (moto does not), so fail-closed can be shown on
the embedded default.

Wrapped format v1::

    b"ekms-local\\x01" || nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes)

AAD = the format header || key id || NUL || canonical JSON of the context (sorted keys, ASCII).
Canonical JSON never contains a raw NUL, so the AAD is unambiguous; a wrong key id or context
fails to verify like any tampering, with ``DecryptionFailed``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Mapping
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.application.ports import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsWrapped,
    RotationState,
)
from app.application.ports.kms import check_key_to_wrap
from app.domain.errors import DecryptionFailed, InvalidInput, KeyUnavailable
from app.domain.values import ExternalKeyStatus, KmsProvider
from app.infra.kms.local_root_key import (
    check_root_key,
    derive,
    load_local_root_key,
    root_key_fingerprint,
)
from app.infra.kms.local_state import (
    LocalKeyState,
    UnreadableState,
    read_state,
    refusal,
    state_file_for,
)

__all__ = ["LocalKms", "LocalKmsConnector", "load_local_root_key", "open_local_kms"]

FORMAT_HEADER = b"ekms-local\x01"
NONCE_SIZE = 12
TAG_SIZE = 16

log = structlog.get_logger(__name__)


_STATUS = {
    LocalKeyState.ENABLED: ExternalKeyStatus.ENABLED,
    LocalKeyState.DISABLED: ExternalKeyStatus.DISABLED,
    LocalKeyState.DELETED: ExternalKeyStatus.DELETED,
}


class LocalKms(KeyManagementService):
    """One key under the local root key. ``ref.key_id`` is bound into every ciphertext.

    ``root_key`` is None once the key is deleted; ``state_file`` (see ``local_state``) holds the
    state that every call obeys (None: always Enabled).
    """

    def __init__(
        self, ref: ExternalKeyRef, root_key: bytes | None, state_file: Path | None = None
    ) -> None:
        self.ref = ref
        self._state_file = state_file
        self._aead: AESGCM | None = None
        self._fingerprint = "deleted"
        if root_key is not None:
            check_root_key(root_key)
            self._aead = AESGCM(derive(root_key, b"ekms-local/wrap/v1", 32))
            self._fingerprint = root_key_fingerprint(root_key)

    def __repr__(self) -> str:
        return f"LocalKms(ref={self.ref!r}, root_key_fingerprint={self._fingerprint!r})"

    @property
    def key_name(self) -> str:
        return f"local:{self._fingerprint}"

    async def _state(self) -> LocalKeyState:
        """``UnreadableState`` when the state file says nothing we know."""
        if self._aead is None:
            return LocalKeyState.DELETED
        if self._state_file is None:
            return LocalKeyState.ENABLED
        return await asyncio.to_thread(read_state, self._state_file)

    async def _usable(self, *, disabled_ok: bool = False) -> AESGCM:
        """The wrapping key if the key's state allows the call, else the refusal AWS gives."""
        try:
            state = await self._state()
        except UnreadableState:
            raise KeyUnavailable("the local root key's state cannot be read") from None
        refused = state is LocalKeyState.DELETED or (
            state is LocalKeyState.DISABLED and not disabled_ok
        )
        if refused or self._aead is None:
            raise refusal(state)
        return self._aead

    def _aad(self, context: Mapping[str, str]) -> bytes:
        canonical = json.dumps(dict(context), sort_keys=True, separators=(",", ":"))
        return FORMAT_HEADER + self.ref.key_id.encode("utf-8") + b"\x00" + canonical.encode()

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        check_key_to_wrap(key_to_wrap)
        aead = await self._usable()
        nonce = secrets.token_bytes(NONCE_SIZE)
        sealed = aead.encrypt(nonce, key_to_wrap, self._aad(context))
        return KmsWrapped(ciphertext=FORMAT_HEADER + nonce + sealed, key_name=self.key_name)

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        if not isinstance(wrapped, bytes):
            raise InvalidInput("wrapped key must be bytes")
        aead = await self._usable()
        body = wrapped[len(FORMAT_HEADER) :]
        if not wrapped.startswith(FORMAT_HEADER) or len(body) < NONCE_SIZE + TAG_SIZE + 1:
            raise DecryptionFailed()
        try:
            return aead.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], self._aad(context))
        except InvalidTag as exc:
            raise DecryptionFailed() from exc

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        """Unwrap and wrap again with a fresh nonce (the root key itself never rotates)."""
        return await self.wrap(await self.unwrap(wrapped, context), context)

    async def describe(self) -> ExternalKeyDescription:
        try:
            state = await self._state()
        except UnreadableState:
            return ExternalKeyDescription(
                status=ExternalKeyStatus.UNAVAILABLE,
                key_name=self.key_name,
                reason="the local root key's state file cannot be read",
            )
        return ExternalKeyDescription(
            status=_STATUS[state], key_name=self.key_name, rotation_enabled=False
        )

    async def rotation_state(self) -> RotationState:
        await self._usable(disabled_ok=True)  # as AWS: readable while disabled, not once deleted
        return RotationState(
            marker=f"local:{self._fingerprint}", rotation_enabled=False, rotation_count=0
        )


class LocalKmsConnector:
    """Opens ``LocalKms`` for local key references. Warns once, when built, that the root key
    is not an external KMS. ``root_key`` is None when the key was deleted."""

    __slots__ = ("_root_key", "_fingerprint", "_state_file")

    def __init__(self, root_key: bytes | None, state_file: Path | None = None) -> None:
        self._root_key = None if root_key is None else check_root_key(root_key)
        self._fingerprint = "deleted" if root_key is None else root_key_fingerprint(root_key)
        self._state_file = state_file
        log.warning(
            "local_root_key_in_use",
            root_key_fingerprint=self._fingerprint,
            detail=(
                "the local root key is NOT an external KMS: nothing outside this host can "
                "disable or revoke it; use it for development or on-premise installations only"
            ),
        )

    def __repr__(self) -> str:
        return f"LocalKmsConnector(root_key_fingerprint={self._fingerprint!r})"

    def connect(self, ref: ExternalKeyRef) -> LocalKms:
        if ref.provider is not KmsProvider.LOCAL:
            raise InvalidInput(f"not a local key reference ({ref.provider.value})")
        return LocalKms(ref, self._root_key, self._state_file)

    def endpoint(self, ref: ExternalKeyRef) -> str:
        return f"local root key (fingerprint {self._fingerprint}), in this process"

    async def aclose(self) -> None:
        """Nothing to close; present for the ``KmsConnector`` port."""


def open_local_kms(
    *, env_value: str | None, file: Path, create_if_missing: bool
) -> LocalKmsConnector:
    """The connector for the local root key (``load_local_root_key``), obeying the state file
    beside ``file``. A deleted key is neither loaded nor created again: every call refuses.

    Blocking file I/O: call it at startup."""
    state_file = state_file_for(file)
    try:
        deleted = read_state(state_file) is LocalKeyState.DELETED
    except UnreadableState:
        deleted = False  # every call will refuse, and describe() says why
    if deleted:
        log.warning("local_root_key_deleted", state_file=str(state_file))
        return LocalKmsConnector(None, state_file)
    root = load_local_root_key(env_value=env_value, file=file, create_if_missing=create_if_missing)
    connector = LocalKmsConnector(root, state_file)
    del root
    return connector
