"""The key's versions on the token, and the AES-GCM calls, all synchronous (run in the pool).

A key is every AES secret-key object whose CKA_LABEL is the ``key_id``. Its versions are told
apart by CKA_ID, read as a big-endian number: the highest is the current version, which wraps;
the others only unwrap the blobs that name them (each blob carries its CKA_ID). Rotating is
creating a new object with the same label and a higher CKA_ID, e.g.
``pkcs11-tool --keygen --key-type AES:32 --label kek --id 02``; ekms then rewraps its EKEK
under it on the next sync. Destroy an old version only after that rewrap.

The state is the current version's: CKA_ENCRYPT and CKA_DECRYPT both true is ENABLED, either
false is DISABLED (wrap and unwrap refuse), no object with the label is DELETED. An older
version with CKA_DECRYPT false refuses the blobs it wrapped; one with only CKA_ENCRYPT false
(retired from wrapping) still unwraps them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import quote

import pkcs11
import pkcs11.exceptions as p11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

from app.domain.errors import DecryptionFailed, KeyUnavailable, Reason
from app.infra.kms.pkcs11 import blob

_READ = [Attribute.ID, Attribute.KEY_TYPE, Attribute.ENCRYPT, Attribute.DECRYPT]
# What a token answers for a GCM tag or ciphertext it will not open (SoftHSM2: GeneralError).
BAD_CIPHERTEXT = (
    p11.GeneralError,
    p11.FunctionFailed,
    p11.EncryptedDataInvalid,
    p11.EncryptedDataLenRange,
    p11.DataInvalid,
    p11.DataLenRange,
)


@dataclass(frozen=True, slots=True)
class KeyVersion:
    handle: pkcs11.Object
    key_id: bytes  # CKA_ID
    can_encrypt: bool
    can_decrypt: bool
    check_value: bytes | None  # CKA_CHECK_VALUE (KCV), when the token gives it

    @property
    def order(self) -> tuple[int, bytes]:
        return int.from_bytes(self.key_id, "big"), self.key_id


def versions(session: pkcs11.Session, label: str, *, kcv: bool = False) -> list[KeyVersion]:
    """The key's AES objects, oldest first; their check values only when ``kcv`` (one more
    call per object)."""
    query = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.LABEL: label}
    found = []
    for obj in list(session.get_objects(query)):  # list(): the search is finalised at once
        attrs = obj.get_attributes(_READ)
        if attrs.get(Attribute.KEY_TYPE) != KeyType.AES:
            raise KeyUnavailable(f"the PKCS#11 object labelled {label!r} is not an AES key")
        found.append(
            KeyVersion(
                handle=obj,
                key_id=bytes(attrs.get(Attribute.ID) or b""),
                can_encrypt=bool(attrs.get(Attribute.ENCRYPT)),
                can_decrypt=bool(attrs.get(Attribute.DECRYPT)),
                check_value=_check_value(obj) if kcv else None,
            )
        )
    found.sort(key=lambda v: v.order)
    if len({v.key_id for v in found}) != len(found):
        raise KeyUnavailable(
            f"several PKCS#11 key objects labelled {label!r} share one CKA_ID: "
            "give each version its own"
        )
    return found


def current(session: pkcs11.Session, label: str) -> KeyVersion:
    """The version that wraps; ``KeyUnavailable(EXTERNAL_KEY_DELETED)`` when there is none."""
    found = versions(session, label)
    if not found:
        raise deleted(label)
    return found[-1]


def wrap(
    session: pkcs11.Session, label: str, key_to_wrap: bytes, context: Mapping[str, str]
) -> tuple[bytes, str]:
    """The v1 blob of ``key_to_wrap`` under the current version, and that version's URI."""
    version = current(session, label)
    handle = version.handle
    # python-pkcs11 gives the object an encrypt method only when CKA_ENCRYPT is true.
    if not (version.can_decrypt and isinstance(handle, pkcs11.EncryptMixin)):
        raise disabled(label)
    if len(version.key_id) > blob.MAX_ID_SIZE:
        raise KeyUnavailable(f"the CKA_ID of {label!r} is longer than {blob.MAX_ID_SIZE} bytes")
    iv = secrets.token_bytes(blob.IV_SIZE)
    header = blob.WrappedBlob(key_id=version.key_id, iv=iv, sealed=b"").header
    params = pkcs11.GCMParams(iv, blob.aad(header, label, context), blob.TAG_BITS)
    sealed = handle.encrypt(key_to_wrap, mechanism=Mechanism.AES_GCM, mechanism_param=params)
    wrapped = blob.WrappedBlob(key_id=version.key_id, iv=iv, sealed=joined(sealed))
    return wrapped.encode(), object_uri(session, label, version.key_id)


def unwrap(
    session: pkcs11.Session, label: str, wrapped: blob.WrappedBlob, context: Mapping[str, str]
) -> bytes:
    """The key under the version ``wrapped`` names. A disabled key (its current version)
    refuses, as does a named version whose CKA_DECRYPT is false; an older version whose
    CKA_ENCRYPT alone is false (retired from wrapping) still unwraps."""
    found = versions(session, label)
    if not found:
        raise deleted(label)
    if not (found[-1].can_encrypt and found[-1].can_decrypt):
        raise disabled(label)
    named = [v for v in found if v.key_id == wrapped.key_id]
    if not named:
        raise DecryptionFailed()  # the version that wrapped it is gone (or never was)
    handle = named[0].handle
    if not isinstance(handle, pkcs11.DecryptMixin):  # CKA_DECRYPT is false
        raise disabled(label)
    params = pkcs11.GCMParams(wrapped.iv, blob.aad(wrapped.header, label, context), blob.TAG_BITS)
    try:
        plain = handle.decrypt(wrapped.sealed, mechanism=Mechanism.AES_GCM, mechanism_param=params)
    except BAD_CIPHERTEXT as exc:
        raise DecryptionFailed() from exc
    return joined(plain)


def object_uri(session: pkcs11.Session, label: str, key_id: bytes) -> str:
    """The key version as an RFC 7512 PKCS#11 URI (what ``KmsWrapped.key_name`` reports)."""
    token = quote(session.token.label, safe="")
    obj = quote(label, safe="")
    return f"pkcs11:token={token};object={obj};id={quote(key_id, safe='')};type=secret-key"


def deleted(label: str) -> KeyUnavailable:
    return KeyUnavailable(
        f"no PKCS#11 key labelled {label!r} on the token (deleted, or never created)",
        reason=Reason.EXTERNAL_KEY_DELETED,
    )


def disabled(label: str) -> KeyUnavailable:
    return KeyUnavailable(
        f"the PKCS#11 key {label!r} is disabled (CKA_ENCRYPT or CKA_DECRYPT is false)",
        reason=Reason.EXTERNAL_KEY_DISABLED,
    )


def _check_value(obj: pkcs11.Object) -> bytes | None:
    try:
        value = obj[Attribute.CHECK_VALUE]
    except (p11.AttributeTypeInvalid, p11.AttributeSensitive, p11.FunctionFailed):
        return None
    return bytes(value) if value else None


def joined(result: bytes | Iterator[bytes]) -> bytes:
    """python-pkcs11 returns bytes for bytes in (an iterator only for chunked input)."""
    return result if isinstance(result, bytes) else b"".join(result)
