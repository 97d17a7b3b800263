"""The OpenAPI document: tags, the bearer scheme, and every problem response of every route.

Routes declare the problems specific to them (``responses=problems(404, 409)``); the ones every
authenticated route can return (401, 403, 500, 503, and 400/413/415/422 where a body or
parameters are taken) are added here, so no operation forgets one. Problem responses are
documented as ``application/problem+json``, with one example per reason the response names
(``app.api.openapi_examples``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Response
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from app.api.openapi_examples import problem_examples
from app.api.problems import PROBLEM_MEDIA_TYPE, Problem
from app.api.security import SecuredRoute, access_of

API_PREFIX = "/api/v1"

NO_CONTENT: dict[str, Any] = {"status_code": 204, "response_class": Response}
"""Route decorator arguments of an operation that answers 204 with no body (a DELETE)."""

TAGS: list[dict[str, Any]] = [
    {"name": "config", "description": "The EKMS configuration of this instance (ekms.admin)."},
    {"name": "status", "description": "Key chain health, status sync and KEK rotation."},
    {"name": "modules", "description": "Crypto modules (ekms.admin; read by every admin role)."},
    {"name": "keys", "description": "Module key versions and their lifecycle (ekms.key_manager)."},
    {"name": "policies", "description": "Module access policies, MAPs (ekms.admin)."},
    {"name": "field-configs", "description": "Encrypted field configurations (ekms.admin)."},
    {"name": "audit", "description": "The audit trail (ekms.auditor)."},
    {"name": "crypto", "description": "The REST data plane; module access policies decide."},
    {"name": "probes", "description": "Liveness and readiness (no token); metrics: own port."},
    {"name": "xks", "description": "AWS KMS external key stores and their keys (XKS proxy)."},
]

DESCRIPTIONS: dict[int, str] = {
    400: "Malformed request: the body is not valid JSON",
    401: "No token, or a token that does not verify (UNAUTHENTICATED) or has expired "
    "(TOKEN_EXPIRED); see `WWW-Authenticate`",
    403: "The caller lacks the role this route needs (reason ROLE_REQUIRED)",
    404: "The resource does not exist",
    409: "Conflict with the current state",
    413: "The request body is too large",
    415: "The request body is not `application/json`",
    422: "Invalid input; `errors` names each offending field",
    500: "Internal error; the body carries only the correlation id (`request_id`)",
    503: "A dependency is unavailable (KMS_UNAVAILABLE, DATABASE_UNAVAILABLE; in strict audit "
    "mode AUDIT_UNAVAILABLE); retry after `Retry-After`",
}


def problems(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """Problem responses for a route decorator; ``descriptions`` overrides by ``_<code>``."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        text = descriptions.get(f"_{code}", DESCRIPTIONS.get(code, "Problem"))
        out[code] = {"model": Problem, "description": text}
    return out


def _problem_content(status: int, description: str) -> dict[str, Any]:
    return {
        PROBLEM_MEDIA_TYPE: {
            "schema": {"$ref": "#/components/schemas/Problem"},
            "examples": problem_examples(status, description),
        }
    }


def _common_codes(route: APIRoute, method: str, operation: dict[str, Any]) -> list[int]:
    codes = [500]
    if not route.path.startswith(API_PREFIX):
        return codes
    codes += [401, 403, 503]
    if operation.get("parameters") or "requestBody" in operation:
        codes.append(422)
    if method in ("POST", "PUT", "PATCH"):
        codes.append(413)  # the body limit holds whether or not the route reads a body
    if "requestBody" in operation:
        codes += [400, 415]
    return codes


def _roles_note(route: APIRoute) -> str:
    rules = access_of(route)
    return f"\n\n**Access:** {rules[0].description}." if rules else ""


def build_openapi(api: FastAPI, routes: list[APIRoute]) -> dict[str, Any]:
    if api.openapi_schema is not None:
        return api.openapi_schema
    schema = get_openapi(
        title=api.title,
        version=api.version,
        description=api.description,
        routes=api.routes,
        tags=TAGS,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" not in components:
        problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(problem.pop("$defs", {}))
        components["Problem"] = problem
    for route in routes:
        for method in sorted(route.methods or ()):
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for code in _common_codes(route, method, operation):
                responses.setdefault(str(code), {"description": DESCRIPTIONS[code]})
            for status, response in responses.items():
                if int(status) >= 400 and not (status == "503" and route.path == "/readyz"):
                    description = str(response.get("description", ""))
                    response["content"] = _problem_content(int(status), description)
            if isinstance(route, SecuredRoute):
                operation["description"] = operation.get("description", "") + _roles_note(route)
                operation["x-required-roles"] = sorted(
                    role.value for rule in access_of(route) for role in rule.roles
                )
    api.openapi_schema = schema
    return schema
