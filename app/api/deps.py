"""Request-scoped access to the process's services, and the caller of each access rule."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.security import ADMIN, ANY_ADMIN_ROLE, AUDITOR, DATA_PLANE, KEY_MANAGER
from app.api.services import ApiServices, services_of
from app.application.context import AppContext
from app.domain.values import Caller


# async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a hop per request.
async def _ctx(request: Request) -> AppContext:
    return services_of(request).ctx


async def _services(request: Request) -> ApiServices:
    return services_of(request)


Ctx = Annotated[AppContext, Depends(_ctx)]
Services = Annotated[ApiServices, Depends(_services)]

Admin = Annotated[Caller, Depends(ADMIN)]
KeyManager = Annotated[Caller, Depends(KEY_MANAGER)]
Auditor = Annotated[Caller, Depends(AUDITOR)]
AnyAdminRole = Annotated[Caller, Depends(ANY_ADMIN_ROLE)]
DataPlaneCaller = Annotated[Caller, Depends(DATA_PLANE)]
