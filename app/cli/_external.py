"""``ekms keys external``: the external keys that wrap the key encryption key (ekms.admin)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from app.cli._http import Client
from app.cli._options import YesOpt, delete, with_client
from app.cli._render import done, listing, spinner, state_markup, styled

external = typer.Typer(
    no_args_is_help=True, help="External keys that wrap the key encryption key (ekms.admin)."
)

PATH = "/ekms/external-keys"
RegionOpt = Annotated[str | None, typer.Option(help="the key's region (AWS)")]


@external.command("list")
@with_client
def external_list(client: Client) -> None:
    """List every external key, the first (the configuration's key_id) first."""
    listing(
        client.call("GET", PATH)["items"],
        client.output,
        "external keys",
        ["id", "first", "provider", "key id", "region", "state", "last sync", "rotation marker"],
        lambda k: [
            k["id"],
            k["first"],
            k["provider"],
            k["key_id"],
            k["region"],
            styled(k["state"]),
            k["last_sync_at"],
            k["rotation_marker"],
        ],
    )


@external.command("add")
@with_client
def external_add(client: Client, provider: str, key_id: str, region: RegionOpt = None) -> None:
    """Wrap the current KEK under one more key; nothing is kept unless the round trip works."""
    body = {"provider": provider, "key_id": key_id, "region": region}
    with spinner(f"wrapping the key encryption key under {key_id} and probing it"):
        data = client.call("POST", PATH, body=body)
    done(
        client.output,
        data,
        f"external key {data['id']} added: {escape(data['key_id'])} "
        f"({state_markup(data['state'])})",
    )


@external.command("remove")
@with_client
def external_remove(client: Client, key_id: str, yes: YesOpt = False) -> None:
    """Remove one external key by its id (not the last one)."""
    delete(client, f"{PATH}/{key_id}", "external key", key_id, yes=yes)
