"""The gRPC adapter's one table: every domain error class has a code, the reason travels in an
``ErrorInfo``, and anything unmapped is INTERNAL without details but with a logged id."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from structlog.testing import capture_logs

from app.domain import errors as e
from app.grpc.errors import ERROR_DOMAIN, STATUS_CODES, code_for, to_status

C = grpc.StatusCode


def _all_error_classes() -> set[type[e.EkmsError]]:
    found: set[type[e.EkmsError]] = set()
    pending = list(e.EkmsError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending.extend(cls.__subclasses__())
    return {cls for cls in found if cls.__module__ == e.__name__}


def test_every_domain_error_class_is_in_the_table() -> None:
    assert _all_error_classes() <= set(STATUS_CODES)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (e.Unauthenticated("x"), C.UNAUTHENTICATED),
        (e.Unauthenticated("x", reason=e.Reason.TOKEN_EXPIRED), C.UNAUTHENTICATED),
        (e.Forbidden("x"), C.PERMISSION_DENIED),
        (e.AccessDenied("x"), C.PERMISSION_DENIED),
        (e.NotFound("x", reason=e.Reason.MODULE_NOT_FOUND), C.NOT_FOUND),
        (e.InvalidInput("x"), C.INVALID_ARGUMENT),
        (e.DecryptionFailed(), C.INVALID_ARGUMENT),
        (e.KeyUnavailable("x", reason=e.Reason.EXTERNAL_KEY_DISABLED), C.FAILED_PRECONDITION),
        (e.AlreadyExists("x"), C.ALREADY_EXISTS),
        (e.Conflict("x"), C.FAILED_PRECONDITION),
        (e.Conflict("x", reason=e.Reason.CONCURRENT_UPDATE), C.ABORTED),
        (e.ServiceUnavailable("x", reason=e.Reason.DATABASE_UNAVAILABLE), C.UNAVAILABLE),
    ],
)
def test_code_and_reason(error: e.EkmsError, code: grpc.StatusCode) -> None:
    assert code_for(error) is code
    status = to_status(error, method="Encrypt")
    assert (status.code, status.message) == (code.value[0], error.message)
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert (info.reason, info.domain) == (error.reason.value, ERROR_DOMAIN)


def test_invalid_input_names_its_field() -> None:
    status = to_status(e.InvalidInput("too long", field="context"), method="Encrypt")
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert dict(info.metadata) == {"field": "context"}


@pytest.mark.parametrize("exc", [RuntimeError("boom: key=abc"), e.EkmsError("base class")])
def test_anything_unmapped_is_internal_without_details_and_logged(exc: Exception) -> None:
    with capture_logs() as logs:
        status = to_status(exc, method="Decrypt")
    assert status.code == C.INTERNAL.value[0]
    assert list(status.details) == []
    assert "boom" not in status.message and "base class" not in status.message
    [event] = [entry for entry in logs if entry["event"] == "grpc_internal_error"]
    assert event["method"] == "Decrypt"
    assert event["correlation_id"] in status.message
    assert event["error"] == type(exc).__name__
    assert "boom" not in str(event) and "base class" not in str(event)
