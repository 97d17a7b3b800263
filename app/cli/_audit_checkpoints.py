"""``ekms audit checkpoints``: the signed checkpoints of the audit chain, to keep elsewhere.

One page is printed as the server's answer (``items`` and ``next_cursor``) in JSON or YAML;
with ``--all`` the checkpoints stream as they are fetched: NDJSON with ``-o json`` (one
checkpoint a line, each with its signature, public key and signed ``payload``: append it to a
file outside the database), one table per page in a table.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from app.cli._audit import audit_group, print_pages
from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import cell

COLUMNS = ["seq", "at", "count", "hash", "key_id"]
IDS = frozenset({"seq", "at", "hash", "key_id"})


@audit_group.command("checkpoints")
@with_client
def checkpoints(
    client: Client,
    limit: Annotated[int, typer.Option(min=1, max=500, help="checkpoints per page")] = 100,
    cursor: Annotated[str | None, typer.Option(help="continue after this page")] = None,
    all_pages: Annotated[
        bool, typer.Option("--all", help="follow every page (NDJSON with -o json)")
    ] = False,
) -> None:
    """Signed checkpoints of the audit chain, oldest first (ekms.auditor)."""
    rows = ("audit checkpoints", COLUMNS, IDS, _row)
    params = {"limit": limit}
    print_pages(
        client, "/audit/checkpoints", params, cursor, all_pages, rows, "ekms audit checkpoints"
    )


def _row(checkpoint: dict[str, Any]) -> list[Text]:
    return [cell(checkpoint[column]) for column in COLUMNS]
