"""``ekms audit``: the audit events, a page at a time or every page."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app.cli._http import Client
from app.cli._options import JsonOpt, with_client
from app.cli._render import dump, errors, styled, table

COLUMNS = ["at", "actor", "action", "result", "module", "target", "count"]


@with_client
def audit(
    client: Client,
    since: Annotated[str | None, typer.Option(help="ISO time with zone, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time with zone, exclusive")] = None,
    actor: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    module: Annotated[str | None, typer.Option()] = None,
    result: Annotated[str | None, typer.Option(help="success, denied or failure")] = None,
    limit: Annotated[int, typer.Option(help="events per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="continue after this page")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="follow every page")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Audit events, oldest first (ekms.auditor)."""
    params: dict[str, Any] = {
        "since": since,
        "until": until,
        "actor": actor,
        "action": action,
        "module": module,
        "result": result,
        "limit": limit,
    }
    while True:
        page = client.call("GET", "/audit", params={**params, "cursor": cursor})
        if as_json:
            dump(page)
        else:
            table("audit", COLUMNS, [_row(event) for event in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return
        if not all_pages:
            errors.print(f"more: ekms audit --cursor {cursor}  (or --all)", soft_wrap=True)
            return


def _row(event: dict[str, Any]) -> list[str]:
    return [
        event["at"],
        event["actor"],
        event["action"],
        styled(event["result"]),
        event["module"] or "-",
        event["target"] or "-",
        str(event["count"]),
    ]
