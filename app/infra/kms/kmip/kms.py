"""``KmipKms``: one KMIP symmetric key, named by its Unique Identifier (``ref.key_id``).

The key's *chain* is the configured key followed through its Replacement Object Links (what a
KMIP ReKey leaves behind): the last key of the chain is the current one. ``wrap`` and
``rewrap`` encrypt under it, ``describe`` reports its State, ``rotation_state``'s marker names
it, so a ReKey changes the marker and the sync's rewrap moves the blob to the replacement key.
A blob names the key that encrypted it (``_format``); ``unwrap`` accepts only a key of the
configured key's chain, so a blob made under any other key the client may use is refused.

KMIP has no ReEncrypt: ``rewrap`` is Decrypt under the old key and Encrypt under the current
one, and the key to wrap passes through this process between the two, as with ``LocalKms``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

from app.application.ports import (
    ExternalKeyDescription,
    ExternalKeyRef,
    KeyManagementService,
    KmsWrapped,
    RotationState,
)
from app.application.ports.kms import check_key_to_wrap
from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.domain.values import ExternalKeyStatus
from app.infra.kms.kmip import _format, _protocol
from app.infra.kms.kmip._errors import is_state_refusal, kmip_errors, translate_kmip_failure
from app.infra.kms.kmip._protocol import KeyAttributes, KmipOperationFailed, State
from app.infra.kms.kmip._ttlv import TtlvError

if TYPE_CHECKING:
    from app.infra.kms.kmip.connector import KmipKmsConnector

MAX_CHAIN = 64

STATES = {
    State.ACTIVE: ExternalKeyStatus.ENABLED,
    # Pre-Active cannot encrypt either, until someone activates it: as disabled.
    State.PRE_ACTIVE: ExternalKeyStatus.DISABLED,
    State.DEACTIVATED: ExternalKeyStatus.DISABLED,
    State.COMPROMISED: ExternalKeyStatus.DISABLED,
    State.DESTROYED: ExternalKeyStatus.DELETED,
    State.DESTROYED_COMPROMISED: ExternalKeyStatus.DELETED,
}
T = TypeVar("T")


class KmipKms(KeyManagementService):
    """One KMIP key. Errors follow ``app.infra.kms.kmip._errors``."""

    def __init__(self, ref: ExternalKeyRef, connector: KmipKmsConnector) -> None:
        self.ref = ref
        self._connector = connector

    def __repr__(self) -> str:
        return f"KmipKms(ref={self.ref!r}, endpoint={self._connector.endpoint(self.ref)!r})"

    # --- the port ---------------------------------------------------------------------------

    async def wrap(self, key_to_wrap: bytes, context: Mapping[str, str]) -> KmsWrapped:
        check_key_to_wrap(key_to_wrap)
        current = (await self._chain())[-1].uid
        aad = _format.aad(self.ref.key_id, current, context)
        nonce = secrets.token_bytes(_format.NONCE_SIZE)
        plaintext = _format.seal_plaintext(aad, key_to_wrap)
        request = _protocol.encrypt_request(current, plaintext, nonce, aad)
        encrypted = await self._call(current, request, _protocol.parse_encrypt)
        tag = encrypted.tag
        if tag is None or len(tag) != _format.TAG_SIZE or len(encrypted.data) != len(plaintext):
            raise KeyUnavailable(
                "the KMIP server did not answer Encrypt with AES-GCM (no 16-byte tag)"
            )
        if encrypted.uid != current:
            raise KeyUnavailable("the KMIP server encrypted under another key than asked")
        sealed = _format.Sealed(uid=current, nonce=nonce, tag=tag, ciphertext=encrypted.data)
        return KmsWrapped(ciphertext=sealed.to_bytes(), key_name=self._key_arn(current))

    async def unwrap(self, wrapped: bytes, context: Mapping[str, str]) -> bytes:
        if not isinstance(wrapped, bytes):
            raise InvalidInput("wrapped key must be bytes")
        sealed = _format.parse(wrapped)
        await self._check_in_chain(sealed.uid)
        aad = _format.aad(self.ref.key_id, sealed.uid, context)
        request = _protocol.decrypt_request(
            sealed.uid, sealed.ciphertext, sealed.nonce, aad, sealed.tag
        )
        plaintext = await self._call(
            sealed.uid, request, _protocol.parse_decrypt, ciphertext_input=True
        )
        return _format.open_plaintext(aad, plaintext)

    async def rewrap(self, wrapped: bytes, context: Mapping[str, str]) -> KmsWrapped:
        """Decrypt under the blob's key, Encrypt under the chain's current key."""
        return await self.wrap(await self.unwrap(wrapped, context), context)

    async def describe(self) -> ExternalKeyDescription:
        try:
            chain = await self._chain()
        except EkmsError as err:
            return _description_for_error(err)
        current = chain[-1]
        status = status_of(current.state)
        if status is None:
            return ExternalKeyDescription(
                status=ExternalKeyStatus.UNAVAILABLE,
                key_name=self._key_arn(current.uid),
                reason=f"the KMIP key's State is {current.state or 'not reported'}",
            )
        return ExternalKeyDescription(status=status, key_name=self._key_arn(current.uid))

    async def rotation_state(self) -> RotationState:
        chain = await self._chain()
        rekeys = len(chain) - 1
        current = chain[-1]
        return RotationState(
            marker=rotation_marker(rekeys, current.uid),
            rotation_enabled=False,  # KMIP rotates on an operator's ReKey, never by itself
            rotation_count=rekeys,
            last_rotation=current.initial_date if rekeys else None,
        )

    # --- helpers ----------------------------------------------------------------------------

    def _key_arn(self, uid: str) -> str:
        return f"{self._connector.endpoint(self.ref)}/{uid}"

    async def _call(
        self,
        uid: str,
        request: bytes,
        parse: Callable[[bytes], T],
        *,
        ciphertext_input: bool = False,
        explain_refusal: bool = True,
    ) -> T:
        """One request about key ``uid``; a refusal is explained by that key's State."""
        with kmip_errors():
            response = await self._connector.exchange(request)
        try:
            return parse(response)
        except KmipOperationFailed as failure:
            if explain_refusal and is_state_refusal(failure):
                raise await self._refusal_for(uid) from failure
            raise translate_kmip_failure(failure, ciphertext_input=ciphertext_input) from failure
        except TtlvError as exc:
            raise ServiceUnavailable(
                "the KMIP server's answer is not a valid KMIP response"
            ) from exc

    async def _refusal_for(self, uid: str) -> EkmsError:
        try:
            status = status_of((await self._attributes(uid)).state)
        except EkmsError as err:
            return err
        if status is ExternalKeyStatus.DISABLED:
            return KeyUnavailable("the KMIP key is not Active", reason=Reason.EXTERNAL_KEY_DISABLED)
        if status is ExternalKeyStatus.DELETED:
            return KeyUnavailable("the KMIP key is destroyed", reason=Reason.EXTERNAL_KEY_DELETED)
        return KeyUnavailable(
            "the KMIP server refused the key's use (permission or usage mask)",
            reason=Reason.EXTERNAL_KEY_ACCESS_DENIED,
        )

    async def _attributes(self, uid: str) -> KeyAttributes:
        request = _protocol.get_attributes_request(uid)
        attributes = await self._call(
            uid, request, _protocol.parse_key_attributes, explain_refusal=False
        )
        if attributes.uid != uid:
            raise KeyUnavailable("the KMIP server described another key than asked")
        return attributes

    async def _chain(self) -> tuple[KeyAttributes, ...]:
        """The configured key and its replacements, oldest first; remembered by the connector."""
        chain: list[KeyAttributes] = []
        uid: str | None = self.ref.key_id
        while uid is not None:
            if len(chain) >= MAX_CHAIN or any(key.uid == uid for key in chain):
                raise KeyUnavailable("the KMIP key's Replacement Object Links do not end")
            chain.append(await self._attributes(uid))
            uid = chain[-1].replacement
        self._connector.remember_chain(self.ref.key_id, tuple(key.uid for key in chain))
        return tuple(chain)

    async def _check_in_chain(self, uid: str) -> None:
        if uid == self.ref.key_id or uid in self._connector.known_chain(self.ref.key_id):
            return
        if uid not in {key.uid for key in await self._chain()}:
            raise DecryptionFailed()


def status_of(state: int | None) -> ExternalKeyStatus | None:
    """Our status for a KMIP State; None when the server said nothing we know."""
    try:
        return STATES.get(State(state)) if state is not None else None
    except ValueError:
        return None


def rotation_marker(rekeys: int, current_uid: str) -> str:
    """``kmip:rekeys=<n>:<current key's uid>``: changes with every ReKey of the chain."""
    return f"kmip:rekeys={rekeys}:{current_uid}"


def _description_for_error(err: EkmsError) -> ExternalKeyDescription:
    if isinstance(err, KeyUnavailable) and err.reason is Reason.EXTERNAL_KEY_DELETED:
        return ExternalKeyDescription(status=ExternalKeyStatus.DELETED)
    return ExternalKeyDescription(
        status=ExternalKeyStatus.UNAVAILABLE, reason=err.message, reason_code=err.reason
    )
