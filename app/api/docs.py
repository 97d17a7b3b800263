"""The API docs, served offline: Swagger UI at ``/docs``, ReDoc at ``/redoc``.

The Swagger UI and ReDoc bundles are those that ship inside the ``fastapi-offline`` package
(``fastapi_offline/static``); our start script for Swagger UI is ``docs_static/swagger-init.js``.
Both are served under ``/docs/static/``, so the pages load nothing from another origin and
start no inline script: the docs CSP (``app.api.middleware``) allows scripts from 'self' only.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_STATIC = "/docs/static"

_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{static}/favicon.png">
<link rel="stylesheet" href="{static}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{static}/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-init.js"></script>
</body>
</html>
"""

# ReDoc starts itself from its custom element: no script of ours is needed.
_REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - ReDoc</title>
<link rel="icon" type="image/png" href="{static}/favicon.png">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{static}/redoc.standalone.js"></script>
</body>
</html>
"""


def install_docs(api: FastAPI, *, openapi_url: str = "/openapi.json") -> None:
    """Serve ``/docs``, ``/redoc`` and their assets on ``api`` (made with docs_url=None)."""
    assets = StaticFiles(packages=[("app.api", "docs_static"), ("fastapi_offline", "static")])
    api.mount(DOCS_STATIC, assets, name="docs-static")

    def page(template: str, request: Request) -> HTMLResponse:
        root = escape(str(request.scope.get("root_path", "")), quote=True)
        html = template.format(
            title=escape(api.title), static=root + DOCS_STATIC, openapi=root + openapi_url
        )
        return HTMLResponse(html)

    @api.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return page(_SWAGGER_PAGE, request)

    @api.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return page(_REDOC_PAGE, request)
