"""``Pkcs11XksHsm``: the XKS proxy's HSM-resident AES-256 keys on the PKCS#11 token.

Each key is one secret-key object, CKA_LABEL ``ekms-xks-<key id>``, generated in the token as
CKA_TOKEN, CKA_SENSITIVE, not CKA_EXTRACTABLE, with CKA_ENCRYPT and CKA_DECRYPT only (no wrap,
unwrap, sign): its bytes never leave the token. Encrypt and decrypt are C_Encrypt/C_Decrypt
with CKM_AES_GCM (the caller's 12- or 16-byte IV, its AAD, a 128-bit tag). The calls go through
a ``Pkcs11KmsConnector`` with a read/write session (its own thread; the library's lock), so
the errors are the provider's (``errors``), and a ciphertext the token will not open is the
one opaque ``DecryptionFailed``.
"""

from __future__ import annotations

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from app.domain.errors import DecryptionFailed, KeyUnavailable, Reason
from app.infra.kms.pkcs11.keys import BAD_CIPHERTEXT, joined
from app.infra.kms.pkcs11.kms import Pkcs11KmsConnector

TAG_BITS = 128
KEY_BITS = 256
_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.PRIVATE: True,
}


def _object(session: pkcs11.Session, label: str) -> pkcs11.Object:
    query = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
    found = list(session.get_objects(query))
    if len(found) != 1:
        raise KeyUnavailable(
            f"the HSM has {len(found)} objects labelled {label!r} (one expected)",
            reason=Reason.EXTERNAL_KEY_DELETED if not found else Reason.EXTERNAL_KEY_UNAVAILABLE,
        )
    return found[0]


def _refused(label: str) -> KeyUnavailable:
    return KeyUnavailable(
        f"the HSM object {label!r} does not allow this (CKA_ENCRYPT or CKA_DECRYPT false)",
        reason=Reason.EXTERNAL_KEY_DISABLED,
    )


class Pkcs11XksHsm:
    """The ``XksHsm`` port on one PKCS#11 token."""

    def __init__(self, caller: Pkcs11KmsConnector) -> None:
        self._caller = caller

    def __repr__(self) -> str:
        return f"Pkcs11XksHsm({self._caller!r})"

    async def aclose(self) -> None:
        await self._caller.aclose()

    async def generate(self, label: str) -> None:
        def make(session: pkcs11.Session) -> None:
            session.generate_key(
                KeyType.AES,
                KEY_BITS,
                label=label,
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template=dict(_TEMPLATE),
            )

        await self._caller.call(make)

    async def encrypt(self, label: str, iv: bytes, plaintext: bytes, aad: bytes) -> bytes:
        params = pkcs11.GCMParams(iv, aad, TAG_BITS)

        def run(session: pkcs11.Session) -> bytes:
            key = _object(session, label)
            if not isinstance(key, pkcs11.EncryptMixin):
                raise _refused(label)
            out = key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            return joined(out)

        return await self._caller.call(run)

    async def decrypt(self, label: str, iv: bytes, sealed: bytes, aad: bytes) -> bytes:
        params = pkcs11.GCMParams(iv, aad, TAG_BITS)

        def run(session: pkcs11.Session) -> bytes:
            key = _object(session, label)
            if not isinstance(key, pkcs11.DecryptMixin):
                raise _refused(label)
            try:
                out = key.decrypt(sealed, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            except BAD_CIPHERTEXT as exc:
                raise DecryptionFailed() from exc
            return joined(out)

        return await self._caller.call(run)

    async def destroy(self, label: str) -> bool:
        def run(session: pkcs11.Session) -> bool:
            query = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
            found = list(session.get_objects(query))
            for obj in found:
                obj.destroy()
            return bool(found)

        return await self._caller.call(run)
