"""``ekms policies``: a module's access policies."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._http import Client
from app.cli._options import JsonOpt, YesOpt, delete, with_client
from app.cli._render import console, fail, listing

policies = typer.Typer(no_args_is_help=True, help="Module access policies (ekms.admin).")


@policies.command("list")
@with_client
def policies_list(client: Client, module: str, as_json: JsonOpt = False) -> None:
    """List a module's access policies."""
    listing(
        client.call("GET", f"/modules/{module}/policies"),
        as_json,
        f"policies of {module}",
        ["id", "target", "operations", "result", "active"],
        lambda p: [
            p["id"],
            f"{p['target_type']}:{p['target']}",
            ",".join(p["operations"]),
            p["result"],
            str(p["active"]),
        ],
    )


@policies.command("create")
@with_client
def policies_create(
    client: Client,
    module: str,
    role: Annotated[str | None, typer.Option(help="a role the policy targets")] = None,
    subject: Annotated[str | None, typer.Option(help="a token subject the policy targets")] = None,
    op: Annotated[
        list[str] | None, typer.Option("--op", help="encrypt, decrypt or rewrap; repeat")
    ] = None,
    result: Annotated[str, typer.Option(help="track, reject or strict_reject")] = "track",
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Add an access policy to a module (name exactly one of --role or --subject)."""
    if (role is None) == (subject is None):
        raise fail("name exactly one of --role or --subject", code=2)
    body = {
        "target_type": "role" if role is not None else "subject",
        "target": role if role is not None else subject,
        "operations": op or ["encrypt", "decrypt"],
        "result": result,
        "description": description,
    }
    data = client.call("POST", f"/modules/{module}/policies", body=body)
    console.print(f"policy {data['id']} created")


@policies.command("delete")
@with_client
def policies_delete(client: Client, policy_id: str, yes: YesOpt = False) -> None:
    """Delete an access policy."""
    delete(client, f"/policies/{policy_id}", f"policy {policy_id}", yes=yes)
