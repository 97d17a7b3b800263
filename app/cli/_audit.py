"""``ekms audit``: the audit events, a page at a time or every page.

One page is printed as the server's answer (``items`` and ``next_cursor``) in JSON or YAML. With
``--all``, the events stream as they are fetched: NDJSON (one event a line) in JSON, one sequence
in YAML, one table per page in a table. ``--order desc`` lists the newest first (the cursor
keeps the order it was given with); ``ekms audit tail`` (``_audit_tail``) follows new events;
``ekms audit verify`` walks the hash chain and its checkpoints and exits 1 when it is broken;
``ekms audit checkpoints`` (``_audit_checkpoints``) exports the signed checkpoints.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import Output, cell, done, dump, errors, stream, styled, table

COLUMNS = ["at", "actor", "action", "result", "module", "target", "justification", "count"]
IDS = frozenset({"at", "target"})


class Order(enum.StrEnum):
    """The order of the events: oldest (``asc``) or newest (``desc``) first."""

    ASC = "asc"
    DESC = "desc"


audit_group = typer.Typer(help="Audit events (ekms.auditor).")


def _unless_subcommand(run: Callable[..., None]) -> Callable[..., None]:
    """The group's callback lists the events only when no subcommand (``tail``) follows."""

    @functools.wraps(run)  # keeps the signature typer reads
    def guarded(ctx: typer.Context, **kwargs: Any) -> None:
        if ctx.invoked_subcommand is None:
            run(ctx, **kwargs)

    return guarded


@audit_group.callback(invoke_without_command=True)
@_unless_subcommand
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
    all_pages: Annotated[
        bool, typer.Option("--all", help="follow every page (NDJSON with -o json)")
    ] = False,
    order: Annotated[Order, typer.Option(help="asc: oldest first; desc: newest first")] = Order.ASC,
) -> None:
    """Audit events, oldest first unless --order desc (ekms.auditor); see also ``tail``."""
    params: dict[str, Any] = {
        "order": order.value,
        "since": since,
        "until": until,
        "actor": actor,
        "action": action,
        "module": module,
        "result": result,
        "limit": limit,
    }
    again = "ekms audit" if order is Order.ASC else "ekms audit --order desc"
    print_pages(client, "/audit", params, cursor, all_pages, ("audit", COLUMNS, IDS, row), again)


Rows = tuple[str, list[str], frozenset[str], Callable[[dict[str, Any]], list[Text]]]
"""How a page prints as a table: its title, columns, the columns that are ids, and a row."""


def print_pages(
    client: Client,
    path: str,
    params: dict[str, Any],
    cursor: str | None,
    all_pages: bool,
    rows: Rows,
    again: str,
) -> None:
    """A cursor-paged listing: one page (and how to ask for the next: ``again --cursor ...``),
    or with ``all_pages`` every page (NDJSON with -o json)."""
    title, columns, ids, row_of = rows
    while True:
        page = client.call("GET", path, params={**params, "cursor": cursor})
        if client.output is Output.TABLE:
            table(title, columns, [row_of(item) for item in page["items"]], ids)
        elif all_pages:
            stream(page["items"], client.output)
        else:
            dump(page, client.output)
        cursor = page["next_cursor"]
        if cursor is None:
            return
        if not all_pages:
            errors.print(f"more: {again} --cursor {escape(cursor)}  (or --all)", soft_wrap=True)
            return


def row(event: dict[str, Any]) -> list[Text]:
    return [
        cell(event["at"]),
        cell(event["actor"]),
        cell(event["action"]),
        styled(event["result"]),
        cell(event["module"]),
        cell(event["target"]),
        cell(_justification(event.get("details") or {})),
        cell(event["count"]),
    ]


def _justification(details: dict[str, Any]) -> str | None:
    """A data-plane event's justification as it was sent (``CODE[:text]``), if it had one."""
    code = details.get("justification_code")
    if code is None:
        return None
    text = details.get("justification_text")
    return f"{code}:{text}" if text else str(code)


@audit_group.command("verify")
@with_client
def audit_verify(
    client: Client,
    since: Annotated[
        str | None, typer.Option(help="ISO time with zone: start at the first row at or after")
    ] = None,
) -> None:
    """Walk the audit hash chain and its signed checkpoints; report the first break."""
    data = client.call("GET", "/audit/verify", params={"since": since})
    found = data["first_break"]
    if found is None:
        keys = "" if data["keys_verified"] else " [yellow](signing keys not proven)[/yellow]"
        done(
            client.output,
            data,
            f"audit chain intact: {data['checked']} rows, {data['checkpoints']} checkpoints "
            f"checked{keys}",
        )
        return
    where = f"position {found['seq']}" if found["seq"] is not None else f"row {found['event_id']}"
    done(
        client.output,
        data,
        f"[red]audit chain broken[/red]: {found['kind']} at {escape(where)}: "
        f"{escape(found['detail'])} ({data['checked']} rows intact before it)",
    )
    raise typer.Exit(1)
