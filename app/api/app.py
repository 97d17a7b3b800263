"""The FastAPI application factory: routes, error handlers, middleware, OpenAPI."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.api import errors, openapi
from app.api.docs import install_docs
from app.api.middleware import RequestContextMiddleware
from app.api.routes import (
    audit,
    crypto,
    crypto_batch,
    crypto_keys,
    ekms,
    external_keys,
    fields,
    modules,
    policies,
    probes,
    xks,
)
from app.api.services import ApiServices

ROUTERS: tuple[APIRouter, ...] = (
    ekms.router,
    external_keys.router,
    modules.router,
    policies.router,
    fields.router,
    audit.router,
    crypto.router,
    crypto_batch.router,
    crypto_keys.router,
    probes.router,
    xks.router,
)

DESCRIPTION = """\
External Key Management Service: field encryption rooted in an external KMS key.

Every `/api/v1` call carries `Authorization: Bearer <JWT>`. Errors are RFC 9457
`application/problem+json` with a stable `type` URI and `reason` per problem
(`https://ekms.dev/problems/<reason in lower case>`).
"""


def api_routes() -> list[APIRoute]:
    """Every route of the app, with its full path."""
    return [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]


def create_app(services: ApiServices) -> FastAPI:
    """The REST app on ``services`` (built by ``app.bootstrap.build_rest_app``)."""
    # No CORS middleware on purpose: browsers on other origins get no access.
    api = FastAPI(
        title="ekms",
        version="1",
        description=DESCRIPTION,
        openapi_tags=openapi.TAGS,
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
    )
    api.state.services = services
    for router in ROUTERS:
        api.include_router(router)
    install_docs(api)
    errors.install_error_handlers(api)
    api.add_middleware(RequestContextMiddleware)
    routes = api_routes()

    def custom_openapi() -> dict[str, Any]:
        return openapi.build_openapi(api, routes)

    api.openapi = custom_openapi  # type: ignore[method-assign]
    return api
