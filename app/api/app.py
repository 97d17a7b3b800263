"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from app.bootstrap import Container


def create_app(container: Container) -> FastAPI:
    api = FastAPI(
        title="ekms",
        version="1",
        description="External Key Management Service: field encryption rooted in an external KMS key.",
    )
    api.state.container = container

    @api.get("/livez", tags=["probes"], summary="The process answers")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", tags=["probes"], summary="Database, schema and key chain are usable")
    async def readyz() -> JSONResponse:
        readiness = await container.readiness()
        body = {"ready": readiness.ready, "reason": readiness.reason, "checks": readiness.checks}
        return JSONResponse(body, status_code=200 if readiness.ready else 503)

    return api
