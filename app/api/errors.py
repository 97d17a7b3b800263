"""The one table from domain error to HTTP status, and the exception handlers built on it.

``STATUS_BY_ERROR`` below is the table; an error's status is that of the nearest class in its
MRO that the table names (``AlreadyExists`` is a ``Conflict``: 409), 500 if none does. A 401
carries ``WWW-Authenticate: Bearer``; a 429 and a 503 carry ``Retry-After``.

Framework errors become problems too: malformed JSON 400, unknown route 404, wrong method 405,
body too large 413, wrong content type 415, request validation 422. Anything else is a bug:
the middleware logs it and answers a 500 problem with only the correlation id.
"""

from __future__ import annotations

import math
from typing import Any, cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.problems import ApiReason, FieldError, problem_response
from app.domain.errors import (
    AccessDenied,
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
    escape_controls,
)

log = structlog.get_logger(__name__)

STATUS_BY_ERROR: dict[type[EkmsError], int] = {
    Unauthenticated: 401,
    Forbidden: 403,  # an admin route without the needed role (ROLE_REQUIRED)
    AccessDenied: 403,  # a module access policy rejected (MAP_REJECTED)
    InvalidInput: 422,  # names the field
    DecryptionFailed: 400,  # one opaque answer for any ciphertext that does not verify
    MacMismatch: 400,  # one opaque answer for a MAC that does not verify
    NotFound: 404,
    Conflict: 409,
    KeyUnavailable: 409,  # the chain cannot serve: a state, not an outage (KEY_VERSION_LOST too)
    ResourceExhausted: 429,  # the caller's rate limit (RATE_LIMITED)
    ServiceUnavailable: 503,  # transient
}

RETRY_AFTER_SECONDS = 5
BEARER_CHALLENGE = 'Bearer realm="ekms"'

# The reason of a problem the framework raised, by status (also the OpenAPI examples' default).
HTTP_REASONS: dict[int, str] = {
    400: ApiReason.MALFORMED_REQUEST,
    401: Reason.UNAUTHENTICATED,
    403: Reason.ROLE_REQUIRED,
    404: Reason.NOT_FOUND,
    405: ApiReason.METHOD_NOT_ALLOWED,
    406: ApiReason.NOT_ACCEPTABLE,
    413: ApiReason.PAYLOAD_TOO_LARGE,
    415: ApiReason.UNSUPPORTED_MEDIA_TYPE,
    422: Reason.INVALID_INPUT,
    429: Reason.RATE_LIMITED,
    503: Reason.KMS_UNAVAILABLE,
}


def http_status(error: EkmsError) -> int:
    """The status of the nearest class in the error's MRO that the table names."""
    for cls in type(error).__mro__:
        if issubclass(cls, EkmsError) and cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


def request_id_of(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


def headers_for(error: EkmsError, status: int, *, token_given: bool) -> dict[str, str]:
    if status == 401:
        challenge = BEARER_CHALLENGE
        if token_given:
            challenge += ', error="invalid_token"'
        return {"WWW-Authenticate": challenge}
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if status == 429:
        retry_after = getattr(error, "retry_after", None) or 1
        return {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return {}


def error_response(request: Request, error: EkmsError) -> JSONResponse:
    status = http_status(error)
    errors: list[FieldError] | None = None
    if isinstance(error, InvalidInput) and error.field:
        errors = [FieldError(field=error.field, message=error.message, type="invalid")]
    if status >= 500:
        log.warning("request_failed", status=status, reason=error.reason.value)
    token_given = bool(request.headers.get("authorization"))
    return problem_response(
        status,
        error.reason.value,
        error.message,
        request_id=request_id_of(request),
        errors=errors,
        headers=headers_for(error, status, token_given=token_given),
    )


async def _on_ekms_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, cast(EkmsError, exc))


def _field_error(error: dict[str, Any]) -> FieldError:
    # a JSON key is caller input: quote it back with its control characters escaped
    loc = [escape_controls(str(part)) for part in error.get("loc", ())]
    location = loc[0] if loc else "body"
    field = ".".join(loc[1:]) or location
    return FieldError(
        field=field,
        location=location,
        message=escape_controls(str(error.get("msg", "invalid value"))),
        type=str(error.get("type", "invalid")),
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    # Never echo ``input``: it may be a plaintext or a token.
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        return problem_response(
            400,
            ApiReason.MALFORMED_REQUEST,
            "the request body is not valid JSON",
            request_id=request_id_of(request),
        )
    errors = [_field_error(e) for e in raw]
    names = ", ".join(dict.fromkeys(e.field for e in errors))
    return problem_response(
        422,
        Reason.INVALID_INPUT,
        f"invalid request: {names}",
        request_id=request_id_of(request),
        errors=errors,
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    status = exc.status_code
    reason = HTTP_REASONS.get(status, f"HTTP_{status}")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else "request failed"
    if status == 404:
        detail = "no such resource"
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", BEARER_CHALLENGE)
    return problem_response(
        status, reason, detail, request_id=request_id_of(request), headers=headers or None
    )


def install_error_handlers(api: FastAPI) -> None:
    api.add_exception_handler(EkmsError, _on_ekms_error)
    api.add_exception_handler(RequestValidationError, _on_validation_error)
    api.add_exception_handler(StarletteHTTPException, _on_http_error)
