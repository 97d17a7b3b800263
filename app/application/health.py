"""Readiness: can this replica serve? Shared by /readyz and the gRPC health service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.application.context import AppContext
from app.domain.errors import EkmsError, Reason


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this replica should receive traffic, and each check behind the answer."""

    ready: bool
    reason: str | None
    checks: dict[str, str]


async def check_readiness(
    ctx: AppContext, schema_at_head: Callable[[], Awaitable[bool]]
) -> Readiness:
    """Database answers, schema at head, key chain usable or not yet configured."""
    checks: dict[str, str] = {}
    try:
        async with ctx.uow() as uow:
            await uow.config.get()
        checks["database"] = "ok"
    except EkmsError as exc:
        checks["database"] = exc.reason.value
        return Readiness(False, Reason.DATABASE_UNAVAILABLE.value, checks)
    if not await schema_at_head():
        checks["schema"] = "behind"
        return Readiness(False, "SCHEMA_NOT_AT_HEAD", checks)
    checks["schema"] = "ok"
    snap = await ctx.chain.snapshot()
    if snap.config is None or not snap.config.active:
        checks["key_chain"] = "not_configured"
        return Readiness(True, None, checks)
    try:
        ctx.chain.check_serving(snap, None)
    except EkmsError as exc:
        checks["key_chain"] = exc.reason.value
        return Readiness(False, exc.reason.value, checks)
    checks["key_chain"] = "ok"
    return Readiness(True, None, checks)
