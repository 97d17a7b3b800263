"""``ekms fields``: which table columns are encrypted, and by which module."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from app.cli._http import Client
from app.cli._options import YesOpt, delete, with_client
from app.cli._render import Output, done, fail, listing, record

fields = typer.Typer(no_args_is_help=True, help="Encrypted field configurations (ekms.admin).")


@fields.command("list")
@with_client
def fields_list(client: Client) -> None:
    """List field configurations."""
    data = client.call("GET", "/field-configs")
    names = _module_names(client) if data and client.output is Output.TABLE else {}
    listing(
        data,
        client.output,
        "field configurations",
        ["id", "field", "module", "active"],
        lambda f: [
            f["id"],
            f"{f['table']}.{f['column']}",
            names.get(f["module_id"], f["module_id"]),
            f["active"],
        ],
        ids=frozenset({"id", "field", "module"}),
    )


def _module_names(client: Client) -> dict[str, str]:
    return {m["id"]: m["name"] for m in client.call("GET", "/modules")}


@fields.command("show")
@with_client
def fields_show(client: Client, config_id: str) -> None:
    """Show one field configuration (by its full id)."""
    data = client.call("GET", f"/field-configs/{config_id}")
    record(data, client.output, f"field configuration {config_id}")


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
    done(client.output, data, escape(f"field {table_name}.{column} -> {module} ({data['id']})"))


@fields.command("update")
@with_client
def fields_update(
    client: Client,
    config_id: str,
    module: Annotated[
        str | None, typer.Option("--module", help="re-point the field at this module")
    ] = None,
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="inactive fields still decrypt, never encrypt"),
    ] = None,
) -> None:
    """Re-point a field configuration (by its full id) at another module, or (de)activate it.
    Values already encrypted keep decrypting under the module that encrypted them."""
    body: dict[str, Any] = {
        k: v for k, v in (("module", module), ("active", active)) if v is not None
    }
    if not body:
        raise fail("nothing to change: give --module, --active or --inactive", code=2)
    data = client.call("PATCH", f"/field-configs/{config_id}", body=body)
    where = module or data["module_id"]
    message = f"field {data['table']}.{data['column']} -> {where} (active: {_yes(data['active'])})"
    done(client.output, data, escape(message))


def _yes(value: bool) -> str:
    return "yes" if value else "no"


@fields.command("delete")
@with_client
def fields_delete(client: Client, config_id: str, yes: YesOpt = False) -> None:
    """Delete a field configuration (by its full id)."""
    delete(client, f"/field-configs/{config_id}", "field configuration", config_id, yes=yes)
