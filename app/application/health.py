"""Readiness: can this replica serve? Shared by /readyz and the gRPC health service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from app.application.context import AppContext
from app.application.snapshot import Snapshot
from app.domain.errors import EkmsError, Reason


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether this replica should receive traffic, and each check behind the answer."""

    ready: bool
    reason: str | None
    checks: dict[str, str]


# What the schema check may answer; the first two serve. "ahead_compatible": a newer release
# migrated past this replica's head, and that schema says this head still serves on it.
SCHEMA_SERVES = frozenset({"ok", "ahead_compatible"})


async def check_readiness(ctx: AppContext, schema_state: Callable[[], Awaitable[str]]) -> Readiness:
    """Database answers, schema at head (or ahead but compatible), key chain usable or not yet
    configured; once configured, each external key's state (``external_key:<id>``). While
    the external chain cannot serve, a replica with modules of ``external_wrap=false`` whose
    local KEK serves stays ready (``key_chain`` names the reason, ``local_kek`` is ok)."""
    checks: dict[str, str] = {}
    try:
        async with ctx.uow() as uow:
            await uow.config.get()
        checks["database"] = "ok"
    except EkmsError as exc:
        checks["database"] = exc.reason.value
        return Readiness(False, Reason.DATABASE_UNAVAILABLE.value, checks)
    checks["schema"] = await schema_state()
    if checks["schema"] not in SCHEMA_SERVES:
        return Readiness(False, "SCHEMA_NOT_AT_HEAD", checks)
    snap = await ctx.chain.snapshot()
    if snap.config is None or not snap.config.active:
        checks["key_chain"] = "not_configured"
        return Readiness(True, None, checks)
    for key in snap.keys:  # every external key's last seen state, by id
        checks[f"external_key:{key.id}"] = key.external_key_status.value
    local_serves = _local_modules_serve(ctx, snap, checks)
    try:
        ctx.chain.check_serving(snap, None)
    except EkmsError as exc:
        checks["key_chain"] = exc.reason.value
        if local_serves:  # the modules outside the external wrap still need this replica
            return Readiness(True, None, checks)
        return Readiness(False, exc.reason.value, checks)
    checks["key_chain"] = "ok"
    return Readiness(True, None, checks)


def _local_modules_serve(ctx: AppContext, snap: Snapshot, checks: dict[str, str]) -> bool:
    """Whether a module with ``external_wrap=false`` exists and its local KEK serves."""
    if not any(not view.module.external_wrap for view in snap.modules.values()):
        return False
    try:
        ctx.chain.local_kek(snap)
    except EkmsError as exc:
        checks["local_kek"] = exc.reason.value
        return False
    checks["local_kek"] = "ok"
    return True
