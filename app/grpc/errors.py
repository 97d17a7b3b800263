"""The one table from domain error to gRPC status, and the ``google.rpc.Status`` it becomes.

``STATUS_CODES`` below is the table: a key is an ``EkmsError`` class, or a (class, ``Reason``)
pair for a reason that answers differently from its class (``CONCURRENT_UPDATE`` is ABORTED,
retry; any other ``Conflict`` is FAILED_PRECONDITION). The most specific entry wins: for each
class of the error's MRO, its (class, reason) pair, then the class. Anything unmapped is
INTERNAL, no details (the boundary logs a correlation id).

A mapped error's status carries one ``google.rpc.ErrorInfo`` in its details: ``reason`` is the
error's ``Reason`` value, ``domain`` is ``"ekms"``, and ``metadata["field"]`` names the offending
request field of an ``InvalidInput`` when known. The message is the error's caller-safe message.
A ``ResourceExhausted`` that knows when to retry also carries a ``google.rpc.RetryInfo``.
"""

from __future__ import annotations

import math
import traceback
import uuid

import grpc
import structlog
from google.rpc import error_details_pb2, status_pb2

from app.domain.errors import (
    AccessDenied,
    AlreadyExists,
    Conflict,
    DecryptionFailed,
    EkmsError,
    Forbidden,
    InvalidInput,
    KeyUnavailable,
    MacMismatch,
    NotFound,
    Reason,
    ResourceExhausted,
    ServiceUnavailable,
    Unauthenticated,
)

log = structlog.get_logger(__name__)

ERROR_DOMAIN = "ekms"

STATUS_CODES: dict[type[EkmsError] | tuple[type[EkmsError], Reason], grpc.StatusCode] = {
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    AccessDenied: grpc.StatusCode.PERMISSION_DENIED,  # a module access policy rejected
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    DecryptionFailed: grpc.StatusCode.INVALID_ARGUMENT,  # one opaque answer
    MacMismatch: grpc.StatusCode.INVALID_ARGUMENT,  # one opaque answer for a MAC
    KeyUnavailable: grpc.StatusCode.FAILED_PRECONDITION,  # the key chain cannot serve
    # the version's configuration ended: a state, not an outage nor missing data
    (KeyUnavailable, Reason.KEY_VERSION_LOST): grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    (Conflict, Reason.CONCURRENT_UPDATE): grpc.StatusCode.ABORTED,  # retry
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,  # RATE_LIMITED, TOO_MANY_STREAMS
    ServiceUnavailable: grpc.StatusCode.UNAVAILABLE,  # transient
}

_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


def code_for(error: EkmsError) -> grpc.StatusCode | None:
    """The status code for ``error`` (most specific entry wins); ``None`` if unmapped."""
    for cls in type(error).__mro__:
        code = STATUS_CODES.get((cls, error.reason)) or STATUS_CODES.get(cls)
        if code is not None:
            return code
    return None


def code_of(status: status_pb2.Status) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` a ``google.rpc.Status`` carries (UNKNOWN for a number gRPC
    does not define)."""
    return _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)


def to_status(exc: BaseException, *, method: str) -> status_pb2.Status:
    """The status a call or an item ends with for ``exc``.

    An unmapped exception is logged here, once, with a fresh correlation id that the INTERNAL
    status's message repeats; the caller learns nothing else about it (the status has no
    details, and the boundary sends it without a details trailer).
    """
    if isinstance(exc, EkmsError):
        code = code_for(exc)
        if code is not None:
            return mapped_status(exc, code)
    correlation_id = uuid.uuid4().hex
    # The type and the stack, never the message or the locals: either may hold request data.
    log.error(
        "grpc_internal_error",
        method=method,
        correlation_id=correlation_id,
        error=type(exc).__name__,
        stack="".join(traceback.format_tb(exc.__traceback__)),
    )
    return internal_status(correlation_id)


def mapped_status(error: EkmsError, code: grpc.StatusCode) -> status_pb2.Status:
    """A ``google.rpc.Status`` for a mapped error, with its ``ErrorInfo``."""
    info = error_details_pb2.ErrorInfo(reason=error.reason.value, domain=ERROR_DOMAIN)
    field = getattr(error, "field", None)
    if isinstance(field, str) and field:
        info.metadata["field"] = field
    status = status_pb2.Status(code=code.value[0], message=error.message)
    status.details.add().Pack(info)
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after > 0:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(math.ceil(retry_after * 1e9))
        status.details.add().Pack(retry)
    return status


def internal_status(correlation_id: str) -> status_pb2.Status:
    """INTERNAL without details; the id lets an operator find the logged cause."""
    return status_pb2.Status(
        code=grpc.StatusCode.INTERNAL.value[0],
        message=f"internal error (correlation id {correlation_id})",
    )


OK_STATUS = status_pb2.Status(code=grpc.StatusCode.OK.value[0])
"""A per-item OK. Assigning it to a message field copies it, so sharing it is safe."""
