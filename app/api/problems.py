"""RFC 9457 problem details: the one body shape of every REST error.

Each problem has a stable ``type`` URI derived from its machine-readable ``reason``
(``https://ekms.dev/problems/<reason in lower case>``), the HTTP ``status``, a short ``title``
for that status, a ``detail`` that is safe to show (never key material, tokens or plaintext),
the ``request_id`` that correlates it with the logs and, for validation errors, ``errors``:
one entry per offending field, without the offending value.
"""

from __future__ import annotations

from enum import StrEnum
from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://ekms.dev/problems/"


class ApiReason(StrEnum):
    """Reasons that only the HTTP boundary produces (the domain's are in ``Reason``)."""

    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


def problem_type(reason: str) -> str:
    return PROBLEM_BASE + reason.lower()


class FieldError(BaseModel):
    """One offending input. The value itself is never echoed (it may be a secret)."""

    field: str = Field(description="dotted path of the field in its location", examples=["name"])
    location: str | None = Field(
        default=None, description="body, query, path or header", examples=["body"]
    )
    message: str = Field(examples=["String should match pattern '^[a-z0-9]...'"])
    type: str = Field(
        description="a stable code for the check that failed", examples=["string_pattern_mismatch"]
    )


class Problem(BaseModel):
    """An RFC 9457 problem details object with ekms extensions."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "https://ekms.dev/problems/module_not_found",
                    "title": "Not Found",
                    "status": 404,
                    "detail": "module 'global.payroll' does not exist",
                    "reason": "MODULE_NOT_FOUND",
                    "request_id": "0f6c1d2e9a8b4c7d",
                }
            ]
        }
    )

    type: str = Field(description="stable URI naming the problem; one per reason")
    title: str = Field(description="short summary of the HTTP status")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what went wrong, safe to show to the caller")
    reason: str = Field(description="machine-readable reason, e.g. EXTERNAL_KEY_DISABLED")
    request_id: str | None = Field(
        default=None, description="correlation id: this request's X-Request-ID, also logged"
    )
    errors: list[FieldError] | None = Field(
        default=None, description="for validation problems: each offending field"
    )


def title_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    reason: str,
    detail: str,
    *,
    request_id: str | None = None,
    errors: list[FieldError] | None = None,
) -> dict[str, Any]:
    body = Problem(
        type=problem_type(reason),
        title=title_for(status),
        status=status,
        detail=detail,
        reason=reason,
        request_id=request_id,
        errors=errors,
    )
    return body.model_dump(exclude_none=True)


def problem_response(
    status: int,
    reason: str,
    detail: str,
    *,
    request_id: str | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, reason, detail, request_id=request_id, errors=errors),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )
