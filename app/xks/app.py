"""The XKS Proxy API v1 as an ASGI app: routes a POST to ``XksProxy.handle`` and answers its
result or error as the specification says (JSON, ``errorName``/``errorMessage``, its status).

    POST {prefix}/kms/xks/v1/health
    POST {prefix}/kms/xks/v1/keys/{externalKeyId}/metadata | encrypt | decrypt

Any other path is ``InvalidUriPathException`` (404); another method on those paths is 405.
``GET /livez`` answers 200 for load balancers (no store, no signature, nothing about keys).
"""

from __future__ import annotations

import json
import re
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.application.ports import SignedRequest
from app.application.xks.proxy import XksCall, XksProxy
from app.domain.xks import SPEC_SUFFIX, XksErrorName, XksOperation, XksRejected

log = structlog.get_logger(__name__)

MAX_BODY = 128 * 1024
_ESC = re.escape(SPEC_SUFFIX)
_HEALTH = re.compile(rf"(?P<prefix>(?:/[A-Za-z0-9_-]+)*){_ESC}/health")
_KEYS = re.compile(
    rf"(?P<prefix>(?:/[A-Za-z0-9_-]+)*){_ESC}/keys/(?P<key>[A-Za-z0-9._-]{{1,128}})"
    r"/(?P<op>metadata|encrypt|decrypt)"
)

STATUS: dict[XksErrorName, int] = {
    XksErrorName.VALIDATION: 400,
    XksErrorName.INVALID_STATE: 400,
    XksErrorName.INVALID_CIPHERTEXT: 400,
    XksErrorName.INVALID_KEY_USAGE: 400,
    XksErrorName.AUTHENTICATION_FAILED: 401,
    XksErrorName.ACCESS_DENIED: 403,
    XksErrorName.KEY_NOT_FOUND: 404,
    XksErrorName.INVALID_URI_PATH: 404,
    XksErrorName.THROTTLING: 429,
    XksErrorName.UNSUPPORTED_OPERATION: 501,
    XksErrorName.DEPENDENCY_TIMEOUT: 503,
    XksErrorName.INTERNAL: 500,
}


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")),
        status_code=status,
        media_type="application/json",
        headers=headers or None,
    )


def _error(name: XksErrorName, message: str, status: int | None = None, **headers: str) -> Response:
    body = {"errorName": name.value, "errorMessage": message}
    return _json(body, STATUS[name] if status is None else status, **headers)


def _route(path: str) -> tuple[str, XksOperation, str | None] | None:
    if (health := _HEALTH.fullmatch(path)) is not None:
        return health["prefix"], XksOperation.HEALTH, None
    if (keys := _KEYS.fullmatch(path)) is not None:
        return keys["prefix"], XksOperation(keys["op"]), keys["key"]
    return None


async def _body(request: Request) -> bytes | None:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_xks_app(proxy: XksProxy) -> Starlette:
    async def livez(_request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def endpoint(request: Request) -> Response:
        routed = _route(request.url.path)
        if routed is None:
            return _error(XksErrorName.INVALID_URI_PATH, "not an XKS Proxy API v1 URI")
        if request.method != "POST":
            return _error(
                XksErrorName.VALIDATION, "XKS API calls are POST requests", 405, Allow="POST"
            )
        body = await _body(request)
        if body is None:
            return _error(XksErrorName.UNSUPPORTED_OPERATION, f"the body is over {MAX_BODY} bytes")
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        signed = SignedRequest(
            method=request.method,
            path=raw_path.decode("latin-1"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        prefix, operation, key_id = routed
        try:
            answer = await proxy.handle(XksCall(prefix, operation, key_id, signed))
        except XksRejected as exc:
            return _error(exc.name, exc.message)
        except Exception:
            log.exception("xks_internal_error", operation=operation.value)
            return _error(XksErrorName.INTERNAL, "internal error")
        return _json(answer)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/livez", livez, methods=["GET"]),
            Route("/{path:path}", endpoint, methods=methods),
        ]
    )
