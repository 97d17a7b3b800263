"""python-pkcs11 errors, mapped once onto the ekms error tree.

    the library cannot be loaded (LibraryUnavailable)      ServiceUnavailable(KMS_UNAVAILABLE)
    NoSuchToken, TokenNotPresent, TokenNotRecognised       ServiceUnavailable(KMS_UNAVAILABLE)
    a lost session (SESSION_LOST: SessionHandleInvalid,
      SessionClosed, DeviceRemoved, UserNotLoggedIn, ...)  ServiceUnavailable(KMS_UNAVAILABLE)
    DeviceError, DeviceMemory, GeneralError, any other     ServiceUnavailable(KMS_UNAVAILABLE)
    PinIncorrect, PinLocked, PinExpired, PinInvalid...     KeyUnavailable(..._ACCESS_DENIED)
    MultipleTokensReturned                                 KeyUnavailable(..._UNAVAILABLE)
    MechanismInvalid, KeyTypeInconsistent, KeySizeRange    KeyUnavailable(..._UNAVAILABLE)
    a caller's wait past ``call_timeout`` (TimeoutError)   ServiceUnavailable(KMS_UNAVAILABLE)

The key's own state is decided in ``keys`` (no object: EXTERNAL_KEY_DELETED; CKA_ENCRYPT or
CKA_DECRYPT false: EXTERNAL_KEY_DISABLED), and a ciphertext the token refuses becomes the one
opaque ``DecryptionFailed`` there. Messages name the failure, never the PIN (python-pkcs11 never
puts it in an error, and no message here quotes one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pkcs11.exceptions as p11

from app.domain.errors import EkmsError, KeyUnavailable, Reason, ServiceUnavailable


class LibraryUnavailable(Exception):
    """The PKCS#11 library could not be loaded or initialised."""


# After these the pool's sessions are of no use: it drops them and reopens on the next call.
SESSION_LOST: tuple[type[BaseException], ...] = (
    p11.SessionHandleInvalid,
    p11.SessionClosed,
    p11.DeviceRemoved,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.UserNotLoggedIn,
    p11.SlotIDInvalid,
)
_TOKEN_GONE = (p11.NoSuchToken, p11.TokenNotPresent, p11.TokenNotRecognised, p11.SlotIDInvalid)
# The token refused the PIN itself: ``pool`` never tries that PIN again (HSMs lock it).
PIN_REFUSED: tuple[type[BaseException], ...] = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinExpired,
    p11.PinLocked,
    p11.UserPinNotInitialized,
)
_CANNOT_GCM = (p11.MechanismInvalid, p11.KeyTypeInconsistent, p11.KeySizeRange)


def translate_pkcs11_error(exc: BaseException, token_label: str) -> EkmsError | None:
    """The ekms error for a failed PKCS#11 call, or ``None`` when ``exc`` is none of ours."""
    if isinstance(exc, LibraryUnavailable):
        return ServiceUnavailable(f"the PKCS#11 library cannot be loaded ({exc})")
    if isinstance(exc, _TOKEN_GONE):
        return ServiceUnavailable(f"the PKCS#11 token {token_label!r} is not present")
    if isinstance(exc, PIN_REFUSED):
        return KeyUnavailable(
            f"the PKCS#11 token refused the user PIN ({type(exc).__name__})",
            reason=Reason.EXTERNAL_KEY_ACCESS_DENIED,
        )
    if isinstance(exc, p11.MultipleTokensReturned):
        return KeyUnavailable(f"several PKCS#11 tokens are labelled {token_label!r}")
    if isinstance(exc, _CANNOT_GCM):
        return KeyUnavailable(
            f"the PKCS#11 key cannot do AES-GCM ({type(exc).__name__})",
            reason=Reason.EXTERNAL_KEY_UNAVAILABLE,
        )
    if isinstance(exc, SESSION_LOST):
        return ServiceUnavailable(f"the PKCS#11 session was lost ({type(exc).__name__})")
    if isinstance(exc, TimeoutError):
        return ServiceUnavailable("the PKCS#11 token did not answer in time")
    if isinstance(exc, p11.PKCS11Error):
        return ServiceUnavailable(f"the PKCS#11 call failed ({type(exc).__name__})")
    return None


@contextmanager
def pkcs11_errors(token_label: str) -> Iterator[None]:
    """Re-raise PKCS#11 errors in the block as ekms errors (``raise ... from exc``)."""
    try:
        yield
    except EkmsError:
        raise
    except Exception as exc:
        err = translate_pkcs11_error(exc, token_label)
        if err is None:
            raise
        raise err from exc
