"""Outside the prefix and without a token: /livez, /readyz.

``/metrics`` is not served here: it has its own listener (``app/api/metrics_app.py``), and the
public port answers it 404 like any unknown path.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.services import services_of

router = APIRouter(tags=["probes"])
log = structlog.get_logger(__name__)


class Liveness(BaseModel):
    status: str


class ReadinessOut(BaseModel):
    ready: bool
    reason: str | None
    checks: dict[str, str]


@router.get("/livez", summary="The process answers")
async def livez() -> Liveness:
    return Liveness(status="ok")


@router.get(
    "/readyz",
    summary="Database reachable, schema at head or compatibly ahead, key chain usable",
    response_model=ReadinessOut,
    responses={503: {"model": ReadinessOut, "description": "Not ready; `reason` says why"}},
)
async def readyz(request: Request) -> JSONResponse:
    try:
        readiness = await services_of(request).readiness()
    except Exception:  # a probe answers, whatever broke
        log.exception("readiness_check_failed")
        body = ReadinessOut(ready=False, reason="READINESS_CHECK_FAILED", checks={})
        return JSONResponse(body.model_dump(), status_code=503)
    body = ReadinessOut(ready=readiness.ready, reason=readiness.reason, checks=readiness.checks)
    return JSONResponse(body.model_dump(), status_code=200 if readiness.ready else 503)
