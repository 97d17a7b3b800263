"""/api/v1/audit: the audit trail, filtered, in pages with an opaque cursor."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from app.api.deps import Auditor, Ctx
from app.api.schemas.audit import (
    AuditEventOut,
    AuditPage,
    AuditVerifyOut,
    decode_cursor,
    encode_cursor,
)
from app.api.schemas.audit_checkpoints import (
    CheckpointOut,
    CheckpointPage,
    decode_checkpoint_cursor,
)
from app.api.security import SecuredRoute
from app.application.audit_checkpoints import list_checkpoints
from app.application.audit_log import list_audit_events
from app.application.audit_verify import verify_audit_chain
from app.application.ports import AuditQuery
from app.domain.audit import AuditResult
from app.domain.errors import InvalidInput

router = APIRouter(prefix="/api/v1/audit", route_class=SecuredRoute)

MAX_PAGE = 500


def _utc(value: datetime | None, field: str) -> datetime | None:
    try:
        return value.astimezone(UTC) if value is not None else None
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 has no UTC equivalent
        raise InvalidInput(f"{field} is out of range", field=field) from None


@router.get(
    "",
    tags=["audit"],
    summary="Audit events, oldest first (or newest first), filtered and paged",
    description=(
        "Data-plane events are aggregated in memory and written about once a second, "
        "so the newest calls may take a moment to appear."
    ),
)
async def list_events(
    ctx: Ctx,
    _caller: Auditor,
    since: Annotated[AwareDatetime | None, Query(description="inclusive, with a time zone")] = None,
    until: Annotated[AwareDatetime | None, Query(description="exclusive, with a time zone")] = None,
    actor: Annotated[str | None, Query(max_length=256, description="the caller's subject")] = None,
    action: Annotated[str | None, Query(max_length=128, examples=["key.revoke"])] = None,
    module: Annotated[str | None, Query(max_length=255)] = None,
    result: Annotated[AuditResult | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    order: Annotated[
        Literal["asc", "desc"],
        Query(description="asc: oldest first (default); desc: newest first; keep it with `cursor`"),
    ] = "asc",
    cursor: Annotated[
        str | None, Query(max_length=512, description="`next_cursor` of the previous page")
    ] = None,
) -> AuditPage:
    since, until = _utc(since, "since"), _utc(until, "until")
    if since is not None and until is not None and since >= until:
        raise InvalidInput("since must be earlier than until", field="until")
    query = AuditQuery(
        since=since,
        until=until,
        actor=actor,
        action=action,
        module=module,
        result=result.value if result else None,
        after=decode_cursor(cursor) if cursor else None,
        limit=limit,
        newest_first=order == "desc",
    )
    found = await list_audit_events(ctx, query)
    page, more = list(found.events), found.more
    return AuditPage(
        items=[AuditEventOut.of(e) for e in page],
        next_cursor=encode_cursor(page[-1].at, page[-1].id) if more and page else None,
    )


@router.get(
    "/verify",
    tags=["audit"],
    summary="Verify the audit hash chain",
    description=(
        "Checks every chained row (or those from `since` on) against its hash and its link to "
        "the previous row, and the recorded head, and every signed checkpoint (its signature, "
        "none missing, the chain still holding the head it signed); reports the first row "
        "altered, deleted, reordered or inserted, or checkpoint broken, or `ok` with the "
        "count. The encoding is in docs/audit.md."
    ),
)
async def verify(
    ctx: Ctx,
    _caller: Auditor,
    since: Annotated[
        AwareDatetime | None, Query(description="start at the first chained row at or after")
    ] = None,
) -> AuditVerifyOut:
    return AuditVerifyOut.of(await verify_audit_chain(ctx, _utc(since, "since")))


@router.get(
    "/checkpoints",
    tags=["audit"],
    summary="Signed checkpoints of the audit chain, oldest first, paged",
    description=(
        "Each checkpoint signs the chain's head (position, row, hash) with the audit signing "
        "key (Ed25519). Keep them outside the database: docs/audit.md shows how to check them "
        "offline."
    ),
)
async def checkpoints(
    ctx: Ctx,
    _caller: Auditor,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    cursor: Annotated[
        str | None, Query(max_length=32, description="`next_cursor` of the previous page")
    ] = None,
) -> CheckpointPage:
    after = decode_checkpoint_cursor(cursor) if cursor else 0
    page = await list_checkpoints(ctx, after, limit)
    items = [CheckpointOut.of(c, key) for c, key in page.items]
    return CheckpointPage(
        items=items, next_cursor=str(items[-1].seq) if page.more and items else None
    )
