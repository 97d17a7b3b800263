"""``ekms config``: show, set and test the EKMS configuration."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import done, fail, record, spinner, state_markup

config = typer.Typer(no_args_is_help=True, help="The EKMS configuration (ekms.admin).")


@config.command("show")
@with_client
def config_show(client: Client) -> None:
    """Show the configuration."""
    record(client.call("GET", "/ekms/config"), client.output, "EKMS configuration")


@config.command("set")
@with_client
def config_set(
    client: Client,
    provider: Annotated[str | None, typer.Option(help="aws or local")] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="key id, ARN or alias")] = None,
    region: Annotated[str | None, typer.Option()] = None,
    sync_interval: Annotated[int | None, typer.Option("--sync-interval", help="minutes")] = None,
    activate: Annotated[bool, typer.Option("--activate/--no-activate")] = True,
) -> None:
    """Create the configuration, or change the given fields of it."""
    current = client.call("GET", "/ekms/config", allow=(404,)) or {}
    body: dict[str, Any] = {
        "provider": provider or current.get("provider"),
        "key_id": key_id or current.get("key_id"),
        "activate": activate,
    }
    if not body["provider"] or not body["key_id"]:
        raise fail("not configured yet: pass --provider and --key-id")
    for name, value in (
        ("region", region),
        ("sync_interval_minutes", sync_interval),
    ):
        if value is not None:
            body[name] = value
    data = client.call("PUT", "/ekms/config", body=body)
    verb = "updated" if current else "created"
    active = "yes" if data["active"] else "no"
    message = f"configuration {verb}: {data['provider']}:{data['key_id']} active: {active}"
    done(client.output, data, escape(message))


@config.command("test")
@with_client
def config_test(client: Client) -> None:
    """Wrap and unwrap a probe key through the external KMS."""
    with spinner("probing the external KMS"):
        data = client.call("POST", "/ekms/config/test")
    lines = [
        f"{'[green]ok[/green]' if k['ok'] else '[red]failed[/red]'}: "
        f"{escape(str(k['key_arn']))} {state_markup(k['status'])} in {k['latency_ms']:.1f} ms"
        + (f": {escape(str(k['reason']))}" if k["reason"] else "")
        for k in data.get("keys") or [data]
    ]
    done(client.output, data, "\n".join(lines))
    if not data["ok"]:
        raise typer.Exit(1)
