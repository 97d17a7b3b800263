"""``ekms fields``: which table columns are encrypted, and by which module."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._http import Client
from app.cli._options import JsonOpt, YesOpt, delete, with_client
from app.cli._render import console, fail, listing

fields = typer.Typer(no_args_is_help=True, help="Encrypted field configurations (ekms.admin).")


@fields.command("list")
@with_client
def fields_list(client: Client, as_json: JsonOpt = False) -> None:
    """List field configurations."""
    data = client.call("GET", "/field-configs")
    names = {} if as_json else {m["id"]: m["name"] for m in client.call("GET", "/modules")}
    listing(
        data,
        as_json,
        "field configurations",
        ["id", "field", "module", "active"],
        lambda f: [
            f["id"],
            f"{f['table']}.{f['column']}",
            names.get(f["module_id"], f["module_id"]),
            str(f["active"]),
        ],
    )


@fields.command("create")
@with_client
def fields_create(
    client: Client,
    field: Annotated[str, typer.Argument(help="table.column")],
    module: str,
    inactive: Annotated[bool, typer.Option("--inactive")] = False,
) -> None:
    """Configure TABLE.COLUMN to be encrypted by MODULE."""
    table_name, _, column = field.partition(".")
    if not column:
        raise fail("name the field as table.column", code=2)
    body = {"table": table_name, "column": column, "module": module, "active": not inactive}
    data = client.call("POST", "/field-configs", body=body)
    console.print(f"field {table_name}.{column} -> {module} ({data['id']})")


@fields.command("delete")
@with_client
def fields_delete(client: Client, config_id: str, yes: YesOpt = False) -> None:
    """Delete a field configuration."""
    delete(client, f"/field-configs/{config_id}", f"field configuration {config_id}", yes=yes)
