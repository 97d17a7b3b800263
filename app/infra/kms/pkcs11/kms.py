"""``Pkcs11KmsConnector`` holds a session on one token; ``Pkcs11Kms`` serves one key on it.

python-pkcs11 is synchronous (it releases the GIL inside each C call): every call runs in the
connector's own thread, one at a time on its session (``pool`` says why), so the event loop
never blocks and a hung token holds only that thread, never the loop's default executor. A
caller waits at most ``call_timeout`` for its call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pkcs11
import structlog

from app.application.ports import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsWrapped,
    RotationState,
)
from app.application.ports.kms import check_key_to_wrap
from app.domain.errors import EkmsError, InvalidInput
from app.domain.values import ExternalKeyStatus
from app.infra.kms.pkcs11 import blob, keys
from app.infra.kms.pkcs11.config import Pkcs11Config
from app.infra.kms.pkcs11.errors import pkcs11_errors
from app.infra.kms.pkcs11.pool import SessionPool

PROVIDER = "pkcs11"  # KmsProvider.PKCS11 once the provider is wired

T = TypeVar("T")
log = structlog.get_logger(__name__)


class Pkcs11KmsConnector:
    """Opens ``Pkcs11Kms`` for keys on the configured token; ``aclose()`` closes the session
    (the library stays loaded and initialised: other users in the process may share it)."""

    def __init__(self, config: Pkcs11Config) -> None:
        self.config = config
        self.pool = SessionPool(config)
        self._executor: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return (
            f"Pkcs11KmsConnector(library={self.config.library!r}, "
            f"token_label={self.config.token_label!r})"
        )

    def connect(self, ref: ExternalKeyRef) -> Pkcs11Kms:
        if str(ref.provider) != PROVIDER:
            raise InvalidInput(f"not a PKCS#11 key reference ({ref.provider})")
        if not ref.key_id:
            raise InvalidInput("the PKCS#11 key label is empty", field="key_id")
        return Pkcs11Kms(ref, self)

    def endpoint(self, ref: ExternalKeyRef) -> str:
        return f"pkcs11:{self.config.library} token={self.config.token_label}"

    async def call(self, fn: Callable[[pkcs11.Session], T]) -> T:
        """``fn(session)`` in the connector's thread; errors mapped by ``errors``."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ekms-pkcs11")
        future = asyncio.get_running_loop().run_in_executor(self._executor, self.pool.run, fn)
        with pkcs11_errors(self.config.token_label):
            return await asyncio.wait_for(future, self.config.call_timeout)

    async def aclose(self) -> None:
        """Close the session (after the calls in flight, waiting ``call_timeout`` at most).
        The connector can be used again afterwards."""
        executor, self._executor = self._executor, None
        if executor is None:
            return  # never called: nothing was opened
        try:
            closing = asyncio.get_running_loop().run_in_executor(executor, self.pool.close)
            await asyncio.wait_for(closing, self.config.call_timeout)
        except TimeoutError:
            log.warning("pkcs11_close_timed_out", token_label=self.config.token_label)
        finally:
            executor.shutdown(wait=False, cancel_futures=True)


class Pkcs11Kms(KeyManagementService):
    """One key (``ref.key_id`` = its CKA_LABEL) on the connector's token.

    Wrapped format and AAD: ``app.infra.kms.pkcs11.blob``; versions, states and rotation:
    ``app.infra.kms.pkcs11.keys``; errors: ``app.infra.kms.pkcs11.errors``.
    """

    def __init__(self, ref: ExternalKeyRef, connector: Pkcs11KmsConnector) -> None:
        self.ref = ref
        self._connector = connector

    def __repr__(self) -> str:
        return f"Pkcs11Kms(ref={self.ref!r}, token_label={self._connector.config.token_label!r})"

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        check_key_to_wrap(key_to_wrap)
        label, ctx = self.ref.key_id, _checked(context)
        wrapped, uri = await self._connector.call(lambda s: keys.wrap(s, label, key_to_wrap, ctx))
        return KmsWrapped(ciphertext=wrapped, key_name=uri)

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        parsed, label, ctx = blob.parse(wrapped), self.ref.key_id, _checked(context)
        return await self._connector.call(lambda s: keys.unwrap(s, label, parsed, ctx))

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        """Unwrap with the version the blob names, wrap with the current one, in one pool call.

        PKCS#11 has no re-encrypt: the key passes through this process's memory, where it
        lives anyway (the KEK is held unwrapped by the key chain)."""
        parsed, label, ctx = blob.parse(wrapped), self.ref.key_id, _checked(context)

        def rewrap(session: pkcs11.Session) -> tuple[bytes, str]:
            return keys.wrap(session, label, keys.unwrap(session, label, parsed, ctx), ctx)

        ciphertext, uri = await self._connector.call(rewrap)
        return KmsWrapped(ciphertext=ciphertext, key_name=uri)

    async def describe(self) -> ExternalKeyDescription:
        label = self.ref.key_id

        def look(session: pkcs11.Session) -> tuple[list[keys.KeyVersion], str | None]:
            found = keys.versions(session, label)
            return found, keys.object_uri(session, label, found[-1].key_id) if found else None

        try:
            found, uri = await self._connector.call(look)
        except EkmsError as err:
            return ExternalKeyDescription(
                status=ExternalKeyStatus.UNAVAILABLE, reason=err.message, reason_code=err.reason
            )
        if not found:
            return ExternalKeyDescription(status=ExternalKeyStatus.DELETED)
        usable = found[-1].can_encrypt and found[-1].can_decrypt
        return ExternalKeyDescription(
            status=ExternalKeyStatus.ENABLED if usable else ExternalKeyStatus.DISABLED,
            key_name=uri,
            rotation_enabled=False,
        )

    async def rotation_state(self) -> RotationState:
        """``pkcs11:id=<CKA_ID hex>[;kcv=<CKA_CHECK_VALUE hex>]`` of the current version:
        a new version (higher CKA_ID), or new material under the same CKA_ID, changes it.
        Readable while disabled; ``KeyUnavailable(EXTERNAL_KEY_DELETED)`` once deleted."""
        label = self.ref.key_id
        found = await self._connector.call(lambda s: keys.versions(s, label, kcv=True))
        if not found:
            raise keys.deleted(label)
        version = found[-1]
        marker = f"pkcs11:id={version.key_id.hex()}"
        if version.check_value:
            marker += f";kcv={version.check_value.hex()}"
        return RotationState(marker=marker, rotation_enabled=False, rotation_count=len(found) - 1)


def _checked(context: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``context`` for the thread, refused (``InvalidInput``) before any HSM call
    when it is not a mapping of strings."""
    copy = dict(context)
    blob.encode_context(copy)
    return copy
