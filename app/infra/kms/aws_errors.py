"""AWS KMS errors, mapped once onto the ekms error tree.

    botocore ClientError by code
        DisabledException                      KeyUnavailable(EXTERNAL_KEY_DISABLED)
        KMSInvalidStateException               KeyUnavailable(EXTERNAL_KEY_PENDING_DELETION)
        NotFoundException                      KeyUnavailable(EXTERNAL_KEY_DELETED)
        AccessDeniedException                  KeyUnavailable(EXTERNAL_KEY_ACCESS_DENIED)
        ThrottlingException, LimitExceeded...  ServiceUnavailable(KMS_THROTTLED)
        KMSInternalException, Dependency...    ServiceUnavailable(KMS_UNAVAILABLE)
        InvalidCiphertext, IncorrectKey        DecryptionFailed
        ValidationException                    DecryptionFailed (ciphertext in) / InvalidInput
        any other 5xx                          ServiceUnavailable(KMS_UNAVAILABLE)
        any other 4xx                          KeyUnavailable(EXTERNAL_KEY_ACCESS_DENIED)
    NoCredentialsError and other credential errors, NoRegionError
                                               KeyUnavailable(EXTERNAL_KEY_UNAVAILABLE)
    timeouts (botocore, asyncio)               ServiceUnavailable(KMS_UNAVAILABLE)
    connection errors (botocore, aiohttp)      ServiceUnavailable(KMS_UNAVAILABLE)

Messages name the failure, never the request: no plaintext, no ciphertext, no AWS message text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)

_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)
_TRANSIENT = frozenset(
    {
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
_BAD_CIPHERTEXT = frozenset({"InvalidCiphertextException", "IncorrectKeyException"})
_SAFE_CODE = re.compile(r"[A-Za-z0-9.]{1,64}")


def translate_aws_error(exc: BaseException, *, ciphertext_input: bool = False) -> EkmsError | None:
    """The ekms error for a failed KMS call, or ``None`` when ``exc`` is not an AWS/transport error.

    ``ciphertext_input`` says the call took a caller's ciphertext (Decrypt, ReEncrypt): then a
    request the KMS rejects as malformed is that ciphertext's fault and becomes
    ``DecryptionFailed``.
    """
    if isinstance(exc, ClientError):
        return _from_client_error(exc, ciphertext_input=ciphertext_input)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return KeyUnavailable("no AWS credentials found in the standard credential chain")
    if isinstance(exc, CredentialRetrievalError):
        return KeyUnavailable("AWS credentials could not be loaded from the credential chain")
    if isinstance(exc, NoRegionError):
        return KeyUnavailable("no AWS region configured for the KMS key")
    if isinstance(exc, ParamValidationError):
        if ciphertext_input:
            return DecryptionFailed()
        return InvalidInput("the KMS request was malformed")
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return ServiceUnavailable("AWS KMS timed out")
    if isinstance(exc, BotoConnectionError | HTTPClientError | aiohttp.ClientError):
        return ServiceUnavailable("AWS KMS is unreachable")
    if isinstance(exc, BotoCoreError):
        return KeyUnavailable(f"AWS client error ({type(exc).__name__})")
    return None


def _from_client_error(exc: ClientError, *, ciphertext_input: bool) -> EkmsError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code == "DisabledException":
        return KeyUnavailable("the AWS KMS key is disabled", reason=Reason.EXTERNAL_KEY_DISABLED)
    if code == "KMSInvalidStateException":
        return KeyUnavailable(
            "the AWS KMS key's state does not allow this operation (e.g. pending deletion)",
            reason=Reason.EXTERNAL_KEY_PENDING_DELETION,
        )
    if code == "NotFoundException":
        return KeyUnavailable(
            "the AWS KMS key was not found (deleted, or never existed in this account/region)",
            reason=Reason.EXTERNAL_KEY_DELETED,
        )
    if code == "AccessDeniedException":
        return KeyUnavailable(
            "access denied to the AWS KMS key (key policy, grant or IAM)",
            reason=Reason.EXTERNAL_KEY_ACCESS_DENIED,
        )
    if code in _THROTTLING:
        return ServiceUnavailable("AWS KMS is throttling requests", reason=Reason.KMS_THROTTLED)
    if code in _TRANSIENT or status >= 500:
        return ServiceUnavailable(f"AWS KMS failed ({_safe(code)})")
    if code in _BAD_CIPHERTEXT or (ciphertext_input and code == "ValidationException"):
        return DecryptionFailed()
    if code == "ValidationException":
        return InvalidInput("AWS KMS rejected the request as invalid")
    # Any other 4xx is the KMS saying "you may not" (bad signature, expired token, an
    # unrecognized client...): a refusal, which fails closed at once.
    return KeyUnavailable(
        f"AWS KMS refused the request ({_safe(code)})", reason=Reason.EXTERNAL_KEY_ACCESS_DENIED
    )


def _safe(code: str) -> str:
    """The error code is server text: show it only when it looks like an error code."""
    return code if _SAFE_CODE.fullmatch(code) else "unknown error"


@contextmanager
def aws_errors(*, ciphertext_input: bool = False) -> Iterator[None]:
    """Re-raise AWS and transport errors in the block as ekms errors (``raise ... from exc``)."""
    try:
        yield
    except Exception as exc:
        err = translate_aws_error(exc, ciphertext_input=ciphertext_input)
        if err is None:
            raise
        if isinstance(exc, ParamValidationError):
            # Its message can carry the offending parameter's value: do not chain it.
            raise err from None
        raise err from exc
