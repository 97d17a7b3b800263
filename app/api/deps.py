"""Request-scoped access to the process's services, and the caller of each access rule."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.security import ADMIN, ANY_ADMIN_ROLE, AUDITOR, DATA_PLANE, KEY_MANAGER, container_of
from app.application.context import AppContext
from app.application.crypto import CryptoService
from app.domain.values import Caller


# async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request.
async def _ctx(request: Request) -> AppContext:
    return container_of(request).ctx


async def _crypto(request: Request) -> CryptoService:
    return container_of(request).crypto


Ctx = Annotated[AppContext, Depends(_ctx)]
Crypto = Annotated[CryptoService, Depends(_crypto)]

Admin = Annotated[Caller, Depends(ADMIN)]
KeyManager = Annotated[Caller, Depends(KEY_MANAGER)]
Auditor = Annotated[Caller, Depends(AUDITOR)]
AnyAdminRole = Annotated[Caller, Depends(ANY_ADMIN_ROLE)]
DataPlaneCaller = Annotated[Caller, Depends(DATA_PLANE)]
