"""The outermost layer of every HTTP request (plain ASGI, no buffering of responses).

- request id: ``X-Request-ID`` if the caller sent a sane one, else generated; echoed back and
  bound (with method and route, later the caller's subject) into structlog's contextvars;
- body limit: a declared ``Content-Length`` over the limit is refused before anything runs,
  a streamed body is cut off when it passes the limit (413 either way);
- security headers on every response; ``Cache-Control: no-store`` everywhere but the docs;
  ``Strict-Transport-Security`` only on responses sent over TLS (RFC 6797 8.1: a browser
  ignores it over plain HTTP, and sending it there suggests a protection that is not there);
- metrics: request count and latency by method, *route template* and status;
- one access log line per request, without query string, headers or bodies;
- last line of defence: any exception that escapes the app is logged with the request id and
  answered with a 500 problem that says nothing else.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable

import structlog
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.docs import DOCS_STATIC
from app.api.problems import ApiReason, problem_response
from app.infra.metrics import HTTP_LATENCY, HTTP_REQUESTS

log = structlog.get_logger("ekms.http")

MAX_BODY_BYTES = 2 * 1024 * 1024  # a 1 MiB plaintext is ~1.4 MiB as base64 JSON
REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_DOC_PATHS = ("/docs", "/redoc", "/openapi.json")
_PROBE_PATHS = frozenset({"/livez", "/readyz"})

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
)
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# The docs load their bundles from /docs/static (app.api.docs) and run no inline script. Styles
# stay 'unsafe-inline': both UIs set style attributes and ReDoc injects <style> elements.
# ReDoc's search runs in a Web Worker made from a blob: URL.
_DOCS_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; connect-src 'self'; worker-src blob:; "
    b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def request_id_from(headers: Iterable[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            text = value.decode("latin-1").strip()
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return secrets.token_hex(16)


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    # Only fixed paths, never the raw one: a label per random URL would grow without bound.
    raw = scope.get("path", "")
    if raw.startswith(DOCS_STATIC + "/"):
        return DOCS_STATIC
    return raw if raw in _DOC_PATHS else "<unmatched>"


class _BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope.get("headers", ()))
        scope.setdefault("state", {})["request_id"] = request_id
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        path: str = scope.get("path", "")
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, method=method)
        csp = _DOCS_CSP if path.startswith(_DOC_PATHS) else _API_CSP
        over_tls = scope.get("scheme") == "https"
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != REQUEST_ID_HEADER
                ]
                headers.extend(SECURITY_HEADERS)
                if over_tls:
                    headers.append(HSTS)
                headers.append((b"content-security-policy", csp))
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                if not path.startswith(_DOC_PATHS):
                    headers = [(k, v) for k, v in headers if k.lower() != b"cache-control"]
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        declared = _content_length(scope)
        try:
            if declared is not None and declared > self.max_body_bytes:
                await problem_response(
                    413,
                    ApiReason.PAYLOAD_TOO_LARGE,
                    f"the request body is larger than {self.max_body_bytes} bytes",
                    request_id=request_id,
                    headers={"Connection": "close"},
                )(scope, receive, send_with_headers)
            else:
                await self.app(scope, self._limited(receive), send_with_headers)
        except Exception:
            log.exception("unhandled_error", route=route_label(scope))
            if not response_started:
                await problem_response(
                    500,
                    ApiReason.INTERNAL_ERROR,
                    "internal error; quote the request id when reporting it",
                    request_id=request_id,
                )(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(elapsed)
            # Probes and scrapes arrive every few seconds: keep them out of the INFO stream.
            quiet = route in _PROBE_PATHS and status < 400
            (log.debug if quiet else log.info)(
                "http_request",
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()

    def _limited(self, receive: Receive) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge()
            return message

        return limited_receive


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
