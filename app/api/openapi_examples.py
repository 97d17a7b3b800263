"""Example problem bodies for the OpenAPI document, one per reason a response names.

A response's description names its reasons in capitals (``No such policy (POLICY_NOT_FOUND)``;
``EXTERNAL_KEY_*`` names every reason with that prefix). Each named reason becomes one named
example of that response, so Swagger UI shows a 404 of the policy routes as POLICY_NOT_FOUND
and not as some other route's problem. A description that names none gets its status's usual
reason.
"""

from __future__ import annotations

import re
from typing import Any

from app.api.errors import HTTP_REASONS
from app.api.problems import ApiReason, FieldError, problem_body
from app.domain.errors import Reason

_REASONS: dict[str, str] = {r.value: r.value for r in (*Reason, *ApiReason)}
_NAMED = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?:_\*)?")
_REQUEST_ID = "0f6c1d2e9a8b4c7d"

DEFAULT_REASON: dict[int, str] = {
    **HTTP_REASONS,
    409: Reason.CONFLICT,
    500: ApiReason.INTERNAL_ERROR,
}

DETAILS: dict[str, str] = {
    "MALFORMED_REQUEST": "the request body is not valid JSON",
    "DECRYPTION_FAILED": "the ciphertext does not verify",
    "MAC_MISMATCH": "the MAC does not verify",
    "UNAUTHENTICATED": "token signature is invalid",
    "TOKEN_EXPIRED": "the token has expired",
    "ROLE_REQUIRED": "this route needs role ekms.admin",
    "MAP_REJECTED": "the access policies of module 'global.payroll' reject encrypt",
    "JUSTIFICATION_REQUIRED": "decrypt on module 'global.payroll' needs a justification",
    "JUSTIFICATION_INVALID": "x-ekms-justification must be <CODE>[:<text>]",
    "NOT_FOUND": "no such resource",
    "MODULE_NOT_FOUND": "module 'global.payroll' does not exist",
    "FIELD_CONFIG_NOT_FOUND": "field configuration 'employees.iban' does not exist",
    "KEY_VERSION_NOT_FOUND": "module 'global.payroll' has no key version 7",
    "POLICY_NOT_FOUND": "policy '5d0f6c1e-9a8b-4c7d-8e2f-0a1b2c3d4e5f' does not exist",
    "NOT_CONFIGURED": "the EKMS is not configured yet",
    "CONFLICT": "the request conflicts with the current state",
    "ALREADY_EXISTS": "module 'global.payroll' already exists",
    "ALREADY_CONFIGURED": "the EKMS is configured already",
    "IMMUTABLE_FIELD": "key_id cannot change once the EKMS is active",
    "INVALID_KEY_TRANSITION": "key version 2 cannot go from destroyed to active",
    "CONCURRENT_UPDATE": "another update changed this resource; read it and retry",
    "MODULE_NOT_PUBLISHED": "module 'global.payroll' is a draft",
    "FIELD_CONFIG_INACTIVE": "field configuration 'employees.iban' is inactive",
    "NO_ACTIVE_KEY": "module 'global.payroll' has no active key version",
    "KEY_USAGE_LIMIT_REACHED": "key version 3 reached its usage limit; rotate the module",
    "PAYLOAD_TOO_LARGE": "the request body is larger than 2097152 bytes",
    "UNSUPPORTED_MEDIA_TYPE": "the request body must be application/json",
    "INVALID_INPUT": "invalid request: name",
    "RATE_LIMITED": "rate limit reached; retry after 1 s",
    "INTERNAL_ERROR": "internal error; quote the request id when reporting it",
    "KMS_UNAVAILABLE": "the external KMS did not answer; retry later",
    "DATABASE_UNAVAILABLE": "the database did not answer; retry later",
    "AUDIT_UNAVAILABLE": "the audit trail cannot be written (strict audit mode); retry later",
}
_INVALID_NAME = FieldError(
    field="name",
    location="body",
    message="String should match pattern '^[a-z][a-z0-9_-]*(\\.[a-z][a-z0-9_-]*)+$'",
    type="string_pattern_mismatch",
)


def reasons_named(status: int, description: str) -> list[str]:
    """The reasons a response description names, in order; ``X_*`` names each ``X_...``
    (but a ``..._NOT_FOUND`` only in a 404)."""
    out: list[str] = []
    for token in _NAMED.findall(description):
        if token.endswith("_*"):
            out += [
                r
                for r in _REASONS
                if r.startswith(token[:-1]) and (status == 404 or not r.endswith("_NOT_FOUND"))
            ]
        elif token in _REASONS:
            out.append(token)
    return list(dict.fromkeys(out))


def _detail(reason: str) -> str:
    if reason in DETAILS:
        return DETAILS[reason]
    return reason.lower().replace("_", " ")


def problem_examples(status: int, description: str) -> dict[str, Any]:
    """Named OpenAPI examples for a problem response with this status and description."""
    reasons = reasons_named(status, description) or [str(DEFAULT_REASON.get(status, status))]
    examples: dict[str, Any] = {}
    for reason in reasons:
        errors = [_INVALID_NAME] if status == 422 else None
        body = problem_body(status, reason, _detail(reason), request_id=_REQUEST_ID, errors=errors)
        examples[reason] = {"summary": reason, "value": body}
    return examples
