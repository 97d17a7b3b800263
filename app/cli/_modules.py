"""``ekms modules``: list, show, create, update and rotate crypto modules."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import done, fail, listing, record, state_markup, styled

modules = typer.Typer(no_args_is_help=True, help="Crypto modules.")

_COLUMNS = ["id", "name", "algorithm", "state", "wrap", "default access", "rotation days"]
_COLUMNS += ["destroy after days", "description"]
RotationOpt = Annotated[
    int | None,
    typer.Option("--rotation-days", min=1, max=3650, help="rotate the active key after N days"),
]
DestroyOpt = Annotated[
    int | None,
    typer.Option(
        "--destroy-after-days",
        min=1,
        max=3650,
        help="destroy deactivated versions N days after deactivation",
    ),
]
WRAP_HELP = (
    "external: the DEKs under the external key chain (disabling it stops the module); "
    "local (--no-external-wrap): under the local KEK, serving through an external key outage "
    "and not revocable by disabling the external key"
)
AccessOpt = Annotated[
    str | None,
    typer.Option("--default-access", help="reject, track or strict_reject: when no policy matches"),
]


def _row(m: dict[str, Any]) -> list[Any]:
    return [
        m["id"],
        m["name"],
        m["algorithm"],
        styled(m["state"]),
        wrap_label(m["external_wrap"]),
        m["default_access"],
        m["rotation_period_days"],
        m["destroy_deactivated_after_days"],
        m["description"],
    ]


def wrap_label(external_wrap: bool) -> str:
    """How a module's DEKs are wrapped: ``external`` depends on the external key."""
    return "external" if external_wrap else "local"


@modules.command("list")
@with_client
def modules_list(client: Client) -> None:
    """List modules."""
    data = client.call("GET", "/modules")
    listing(data, client.output, "modules", _COLUMNS, _row, ids=frozenset({"id", "name"}))


@modules.command("show")
@with_client
def modules_show(client: Client, name: str) -> None:
    """Show one module."""
    record(client.call("GET", f"/modules/{name}"), client.output, f"module {name}")


@modules.command("create")
@with_client
def modules_create(
    client: Client,
    name: str,
    algorithm: Annotated[str, typer.Option(help="AES-256-GCM or AES-256-SIV")] = "AES-256-GCM",
    default_access: Annotated[
        str, typer.Option("--default-access", help="reject, track or strict_reject")
    ] = "reject",
    description: Annotated[str, typer.Option()] = "",
    draft: Annotated[bool, typer.Option("--draft", help="create as a draft")] = False,
    rotation_days: RotationOpt = None,
    destroy_after_days: DestroyOpt = None,
    external_wrap: Annotated[
        bool, typer.Option("--external-wrap/--no-external-wrap", help=WRAP_HELP)
    ] = True,
) -> None:
    """Create a module with its first key version."""
    body = {
        "name": name,
        "algorithm": algorithm,
        "default_access": default_access,
        "description": description,
        "state": "draft" if draft else "published",
        "rotation_period_days": rotation_days,
        "destroy_deactivated_after_days": destroy_after_days,
        "external_wrap": external_wrap,
    }
    data = client.call("POST", "/modules", body=body)
    created = f"{data['algorithm']}, {wrap_label(data['external_wrap'])} wrap, id {data['id']}"
    message = f"module [bold]{escape(data['name'])}[/bold] created ({created})"
    done(client.output, data, message)


@modules.command("update")
@with_client
def modules_update(
    client: Client,
    name: str,
    description: Annotated[str | None, typer.Option()] = None,
    default_access: AccessOpt = None,
    publish: Annotated[bool, typer.Option("--publish", help="publish a draft module")] = False,
    rotation_days: RotationOpt = None,
    no_rotation: Annotated[
        bool, typer.Option("--no-rotation", help="stop rotating the key on a schedule")
    ] = False,
    destroy_after_days: DestroyOpt = None,
    no_destroy_after: Annotated[
        bool, typer.Option("--no-destroy-after", help="stop destroying deactivated versions")
    ] = False,
    external_wrap: Annotated[
        bool | None,
        typer.Option(
            "--external-wrap/--no-external-wrap",
            help="move the DEKs (a rewrap, audited): " + WRAP_HELP,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Change the given settings of a module; the others keep their value."""
    body: dict[str, Any] = {
        k: v
        for k, v in (
            ("description", description),
            ("default_access", default_access),
            ("state", "published" if publish else None),
            ("rotation_period_days", rotation_days),
            ("destroy_deactivated_after_days", destroy_after_days),
            ("external_wrap", external_wrap),
        )
        if v is not None
    }
    for flag, value, field in (
        (no_rotation, rotation_days, "rotation_period_days"),
        (no_destroy_after, destroy_after_days, "destroy_deactivated_after_days"),
    ):
        if flag and value is not None:
            raise fail(f"give a number of days or turn it off, not both ({field})", code=2)
        if flag:
            body[field] = None  # null turns it off
    if not body:
        raise fail("nothing to change: give at least one option (see --help)", code=2)
    data = client.call("PATCH", f"/modules/{name}", body=body)
    wrap = f" ({wrap_label(data['external_wrap'])} wrap)" if external_wrap is not None else ""
    done(client.output, data, f"module [bold]{escape(data['name'])}[/bold] updated{wrap}")


@modules.command("rotate")
@with_client
def modules_rotate(client: Client, name: str) -> None:
    """New active key version for a module (ekms.key_manager)."""
    data = client.call("POST", f"/modules/{name}/keys/rotate")
    message = f"{escape(name)}: key version {data['version']} is {state_markup(data['state'])}"
    done(client.output, data, message)
