"""What the REST adapter is handed: explicit services, built by the composition root.

``create_app(services)`` keeps them on the app; a route reaches them through its dependencies
(``deps.Ctx``) or ``services_of(request)``, never through the process's container. gRPC's
``GrpcServer`` is handed the same services.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from app.application.context import AppContext
from app.application.crypto import CryptoService
from app.application.health import Readiness
from app.application.ports import TokenVerifier


@dataclass(frozen=True, slots=True)
class ApiServices:
    ctx: AppContext
    crypto: CryptoService
    verifier: TokenVerifier | None
    """``None``: no token source is configured, so every protected route answers 401."""
    readiness: Callable[[], Awaitable[Readiness]]
    sync_interval_minutes: int
    """The sync interval of a configuration created without one (``EKMS_SYNC_INTERVAL_MINUTES``)."""
    max_batch_items: int = 10_000
    """The most items one batch route takes (``EKMS_MAX_BATCH_ITEMS``, as over gRPC)."""


def services_of(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services
