"""KMIP failures, mapped once onto the ekms error tree.

    KmipOperationFailed by result reason
        Item Not Found, Object Not Found, Object Destroyed
                                           KeyUnavailable(EXTERNAL_KEY_DELETED)
        Permission Denied, Wrong Key Lifecycle State, Illegal Operation,
        Incompatible Cryptographic Usage Mask
                                           a refusal: the caller reads the key's State to say
                                           which (disabled, deleted), else access denied
        Authentication Not Successful, Not Authorised
                                           KeyUnavailable(EXTERNAL_KEY_ACCESS_DENIED)
        Cryptographic Failure              DecryptionFailed (ciphertext in) / KMS_UNAVAILABLE
        General Failure, Invalid Field     DecryptionFailed (ciphertext in: PyKMIP answers a
                                           bad GCM tag so) / ServiceUnavailable / InvalidInput
        Operation/Feature Not Supported, unsupported or bad cryptographic parameters,
        Unsupported Protocol Version       KeyUnavailable(EXTERNAL_KEY_UNAVAILABLE)
        Server Limit Exceeded              ServiceUnavailable(KMS_THROTTLED)
        Internal Server Error, Protection Storage Unavailable
                                           ServiceUnavailable(KMS_UNAVAILABLE)
        any other                          KeyUnavailable(EXTERNAL_KEY_UNAVAILABLE)
    ssl.SSLCertVerificationError           KeyUnavailable(EXTERNAL_KEY_UNAVAILABLE): the server
                                           is not who EKMS_KMIP_CA_FILE / EKMS_KMIP_HOST say
    other TLS handshake alerts             KeyUnavailable(EXTERNAL_KEY_ACCESS_DENIED): our
                                           client certificate was refused
    timeouts                               ServiceUnavailable(KMS_UNAVAILABLE)
    connection errors, EOF, reset          ServiceUnavailable(KMS_UNAVAILABLE)
    a response that is not KMIP            ServiceUnavailable(KMS_UNAVAILABLE)

Messages name the failure, never the request: no key bytes, no ciphertext, no server text.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.infra.kms.kmip._protocol import KmipOperationFailed
from app.infra.kms.kmip._transport import ResponseTooLarge
from app.infra.kms.kmip._ttlv import TtlvError

ITEM_NOT_FOUND = 1
_DELETED = frozenset({ITEM_NOT_FOUND, 54, 55})  # + Object Destroyed, Object Not Found
_STATE_REFUSALS = frozenset({11, 12, 41, 67})  # Illegal Op, Permission Denied, mask, lifecycle
_NOT_AUTHENTICATED = frozenset({3, 57})  # Authentication Not Successful, Not Authorised
_CRYPTOGRAPHIC_FAILURE = 10
_GENERAL_FAILURE = 256
_INVALID_FIELD = 7
_UNSUPPORTED = frozenset({5, 8, 36, 62, 63})
_SERVER_LIMIT = 58
_SERVER_TROUBLE = frozenset({42, 68})


def is_state_refusal(exc: KmipOperationFailed) -> bool:
    """A refusal that the key's lifecycle state may explain (read the State to say which)."""
    return exc.result_reason in _STATE_REFUSALS


def translate_kmip_failure(exc: KmipOperationFailed, *, ciphertext_input: bool) -> EkmsError:
    reason = exc.result_reason
    if reason in _DELETED:
        return KeyUnavailable(
            "the KMIP key was not found (destroyed, or never existed on this server)",
            reason=Reason.EXTERNAL_KEY_DELETED,
        )
    if reason in _STATE_REFUSALS:
        return KeyUnavailable(
            "the KMIP server refused the key's use (permission or usage mask)",
            reason=Reason.EXTERNAL_KEY_ACCESS_DENIED,
        )
    if reason in _NOT_AUTHENTICATED:
        return KeyUnavailable(
            "the KMIP server did not authorise this client (its certificate's identity)",
            reason=Reason.EXTERNAL_KEY_ACCESS_DENIED,
        )
    if ciphertext_input and reason in (_CRYPTOGRAPHIC_FAILURE, _GENERAL_FAILURE, _INVALID_FIELD):
        return DecryptionFailed()
    if reason == _INVALID_FIELD:
        return InvalidInput("the KMIP server rejected the request as invalid")
    if reason in _UNSUPPORTED:
        return KeyUnavailable(
            "the KMIP server does not support AES-GCM Encrypt/Decrypt over KMIP 1.4 "
            f"(result reason {reason})"
        )
    if reason == _SERVER_LIMIT:
        return ServiceUnavailable("the KMIP server is over its limits", reason=Reason.KMS_THROTTLED)
    if reason in _SERVER_TROUBLE or reason in (_GENERAL_FAILURE, _CRYPTOGRAPHIC_FAILURE):
        return ServiceUnavailable(f"the KMIP server failed (result reason {reason})")
    return KeyUnavailable(f"the KMIP server refused the request (result reason {reason})")


def translate_transport_error(exc: BaseException) -> EkmsError | None:
    """The ekms error for a failed exchange, or ``None`` when ``exc`` is not a KMIP/network one."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return KeyUnavailable(
            "the KMIP server's certificate failed verification "
            "(EKMS_KMIP_CA_FILE, and EKMS_KMIP_HOST must match the certificate)"
        )
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
        return ServiceUnavailable("the KMIP server closed the connection")
    if isinstance(exc, ssl.SSLError):
        return KeyUnavailable(
            "the KMIP server refused the TLS handshake (is the client certificate trusted?)",
            reason=Reason.EXTERNAL_KEY_ACCESS_DENIED,
        )
    if isinstance(exc, TimeoutError):
        return ServiceUnavailable("the KMIP server timed out")
    if isinstance(exc, OSError):
        return ServiceUnavailable("the KMIP server is unreachable")
    if isinstance(exc, TtlvError | ResponseTooLarge):
        return ServiceUnavailable("the KMIP server's answer is not a valid KMIP response")
    return None


@contextmanager
def kmip_errors(*, ciphertext_input: bool = False) -> Iterator[None]:
    """Re-raise KMIP and transport errors in the block as ekms errors."""
    try:
        yield
    except KmipOperationFailed as exc:
        raise translate_kmip_failure(exc, ciphertext_input=ciphertext_input) from exc
    except Exception as exc:
        err = translate_transport_error(exc)
        if err is None:
            raise
        raise err from exc
