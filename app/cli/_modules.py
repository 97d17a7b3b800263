"""``ekms modules``: list, create and rotate crypto modules."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._http import Client
from app.cli._options import JsonOpt, with_client
from app.cli._render import console, listing, styled

modules = typer.Typer(no_args_is_help=True, help="Crypto modules.")


@modules.command("list")
@with_client
def modules_list(client: Client, as_json: JsonOpt = False) -> None:
    """List modules."""
    listing(
        client.call("GET", "/modules"),
        as_json,
        "modules",
        ["name", "algorithm", "state", "default access", "description"],
        lambda m: [m["name"], m["algorithm"], m["state"], m["default_access"], m["description"]],
    )


@modules.command("create")
@with_client
def modules_create(
    client: Client,
    name: str,
    algorithm: Annotated[str, typer.Option(help="AES-256-GCM or AES-256-SIV")] = "AES-256-GCM",
    default_access: Annotated[str, typer.Option("--default-access")] = "reject",
    description: Annotated[str, typer.Option()] = "",
    draft: Annotated[bool, typer.Option("--draft", help="create as a draft")] = False,
) -> None:
    """Create a module with its first key version."""
    body = {
        "name": name,
        "algorithm": algorithm,
        "default_access": default_access,
        "description": description,
        "state": "draft" if draft else "published",
    }
    data = client.call("POST", "/modules", body=body)
    console.print(f"module [bold]{data['name']}[/bold] created ({data['algorithm']})")


@modules.command("rotate")
@with_client
def modules_rotate(client: Client, name: str) -> None:
    """New active key version for a module (ekms.key_manager)."""
    data = client.call("POST", f"/modules/{name}/keys/rotate")
    console.print(f"{name}: key version {data['version']} is {styled(data['state'])}")
