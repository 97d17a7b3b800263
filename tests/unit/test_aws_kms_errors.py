"""The AWS error table, one row at a time (errors the moto server cannot produce included)."""

from __future__ import annotations

import aiohttp
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from app.domain.errors import (
    DecryptionFailed,
    EkmsError,
    InvalidInput,
    KeyUnavailable,
    Reason,
    ServiceUnavailable,
)
from app.infra.kms.aws_errors import aws_errors, translate_aws_error


def client_error(code: str, status: int = 400, message: str = "server text") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Encrypt",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind", "reason"),
    [
        ("DisabledException", 400, KeyUnavailable, Reason.EXTERNAL_KEY_DISABLED),
        ("KMSInvalidStateException", 400, KeyUnavailable, Reason.EXTERNAL_KEY_PENDING_DELETION),
        ("NotFoundException", 400, KeyUnavailable, Reason.EXTERNAL_KEY_DELETED),
        ("AccessDeniedException", 400, KeyUnavailable, Reason.EXTERNAL_KEY_ACCESS_DENIED),
        ("ThrottlingException", 400, ServiceUnavailable, Reason.KMS_THROTTLED),
        ("LimitExceededException", 400, ServiceUnavailable, Reason.KMS_THROTTLED),
        ("KMSInternalException", 500, ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        ("DependencyTimeoutException", 503, ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        ("KeyUnavailableException", 500, ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        ("SomethingNew", 502, ServiceUnavailable, Reason.KMS_UNAVAILABLE),
        ("InvalidCiphertextException", 400, DecryptionFailed, Reason.DECRYPTION_FAILED),
        ("IncorrectKeyException", 400, DecryptionFailed, Reason.DECRYPTION_FAILED),
        ("ValidationException", 400, InvalidInput, Reason.INVALID_INPUT),
        ("InvalidKeyUsageException", 400, KeyUnavailable, Reason.EXTERNAL_KEY_ACCESS_DENIED),
    ],
)
def test_client_errors(code: str, status: int, kind: type[EkmsError], reason: Reason) -> None:
    err = translate_aws_error(client_error(code, status))
    assert type(err) is kind
    assert err.reason is reason
    assert "server text" not in err.message


def test_access_denied_says_so() -> None:
    err = translate_aws_error(client_error("AccessDeniedException"))
    assert err is not None and "access denied" in err.message


def test_invalid_state_message_names_the_state_problem() -> None:
    err = translate_aws_error(client_error("KMSInvalidStateException"))
    assert err is not None and "pending deletion" in err.message


def test_validation_of_a_callers_ciphertext_is_a_decryption_failure() -> None:
    err = translate_aws_error(client_error("ValidationException"), ciphertext_input=True)
    assert isinstance(err, DecryptionFailed)


def test_unknown_codes_are_shown_only_when_they_look_like_codes() -> None:
    shown = translate_aws_error(client_error("UnsupportedOperationException"))
    hidden = translate_aws_error(client_error("<b>not a code</b>"))
    assert shown is not None and "UnsupportedOperationException" in shown.message
    assert hidden is not None and "not a code" not in hidden.message


@pytest.mark.parametrize(
    ("exc", "kind", "reason", "phrase"),
    [
        (
            NoCredentialsError(),
            KeyUnavailable,
            Reason.EXTERNAL_KEY_UNAVAILABLE,
            "no AWS credentials",
        ),
        (
            PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY"),
            KeyUnavailable,
            Reason.EXTERNAL_KEY_UNAVAILABLE,
            "no AWS credentials",
        ),
        (
            CredentialRetrievalError(provider="assume-role-with-web-identity", error_msg="x"),
            KeyUnavailable,
            Reason.EXTERNAL_KEY_UNAVAILABLE,
            "credentials",
        ),
        (NoRegionError(), KeyUnavailable, Reason.EXTERNAL_KEY_UNAVAILABLE, "region"),
        (
            EndpointConnectionError(endpoint_url="https://kms"),
            ServiceUnavailable,
            Reason.KMS_UNAVAILABLE,
            "unreachable",
        ),
        (
            ConnectionClosedError(endpoint_url="https://kms"),
            ServiceUnavailable,
            Reason.KMS_UNAVAILABLE,
            "unreachable",
        ),
        (
            ConnectTimeoutError(endpoint_url="https://kms"),
            ServiceUnavailable,
            Reason.KMS_UNAVAILABLE,
            "timed out",
        ),
        (
            ReadTimeoutError(endpoint_url="https://kms"),
            ServiceUnavailable,
            Reason.KMS_UNAVAILABLE,
            "timed out",
        ),
        (TimeoutError(), ServiceUnavailable, Reason.KMS_UNAVAILABLE, "timed out"),
        (
            aiohttp.ClientConnectionError("reset"),
            ServiceUnavailable,
            Reason.KMS_UNAVAILABLE,
            "unreachable",
        ),
        (
            aiohttp.ServerTimeoutError("slow"),
            ServiceUnavailable,
            Reason.KMS_UNAVAILABLE,
            "timed out",
        ),
    ],
)
def test_transport_and_credential_errors(
    exc: Exception, kind: type[EkmsError], reason: Reason, phrase: str
) -> None:
    err = translate_aws_error(exc)
    assert type(err) is kind
    assert err.reason is reason
    assert phrase in err.message


def test_other_exceptions_are_not_translated() -> None:
    assert translate_aws_error(ValueError("a bug")) is None
    with pytest.raises(ValueError, match="a bug"), aws_errors():
        raise ValueError("a bug")


def test_context_manager_chains_the_aws_error() -> None:
    original = client_error("DisabledException")
    with pytest.raises(KeyUnavailable) as info, aws_errors():
        raise original
    assert info.value.reason is Reason.EXTERNAL_KEY_DISABLED
    assert info.value.__cause__ is original


def test_param_validation_errors_are_not_chained() -> None:
    # botocore quotes a mistyped parameter's value in this error: it must not ride along.
    leaky = ParamValidationError(report="Invalid type for parameter Plaintext, value: 'secret'")
    with pytest.raises(DecryptionFailed) as info, aws_errors(ciphertext_input=True):
        raise leaky
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__ is True
    with pytest.raises(InvalidInput) as info2, aws_errors():
        raise leaky
    assert "secret" not in str(info2.value)


@pytest.mark.parametrize("code", ["Weird\n", "Weird\r\nX-Injected: 1", "Wé", "A" * 65])
def test_an_error_code_that_is_not_one_is_never_echoed(code: str) -> None:
    err = translate_aws_error(client_error(code, 400))
    assert err is not None and "unknown error" in err.message
    assert "\n" not in err.message and "Weird" not in err.message
