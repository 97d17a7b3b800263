"""After a commit that overwrote or deleted key material: make the database forget it too."""

from __future__ import annotations

import structlog

from app.application.context import AppContext
from app.application.ports import KeyStore

log = structlog.get_logger(__name__)


async def erase_dead_rows(ctx: AppContext, *stores: KeyStore) -> bool:
    """Ask the database to drop the superseded row versions of ``stores``; whether it did.

    A failure is logged, not raised: the change it follows is committed and stays so, and the
    database's own housekeeping (autovacuum, the next checkpoint) finishes the job later.
    """
    try:
        await ctx.uow.erase_dead_rows(*stores)
    except Exception as exc:  # the committed change must not be reported as failed
        log.error(
            "dead_rows_not_erased",
            stores=[store.value for store in stores],
            error=type(exc).__name__,
            reason=getattr(getattr(exc, "reason", None), "value", None),
        )
        return False
    return True
