"""``ekms status``: the key chain as a tree."""

from __future__ import annotations

from typing import Any

from rich.tree import Tree

from app.cli._http import Client
from app.cli._options import JsonOpt, with_client
from app.cli._render import console, dump, styled


@with_client
def status(client: Client, as_json: JsonOpt = False) -> None:
    """The key chain: external key, KEK, modules and key versions, open alerts."""
    data = client.call("GET", "/ekms/status")
    modules = client.call("GET", "/modules", allow=(403,))
    keys: dict[str, list[dict[str, Any]]] = {}
    for module in modules or []:
        keys[module["name"]] = client.call("GET", f"/modules/{module['name']}/keys")
    if as_json:
        dump({"status": data, "keys": keys})
        return
    serving = (
        "[bold green]serving[/]"
        if data["serving"]
        else f"[bold red]NOT SERVING[/] ({data['serving_reason']})"
    )
    tree = Tree(f"[bold]ekms key chain[/bold]  {serving}")
    ext = data["external_key"]
    ext_node = tree.add(
        f"external key [cyan]{ext['provider']}:{ext['key_id']}[/cyan]  {styled(ext['status'])}"
        f"  last sync {ext['last_sync_at'] or 'never'}"
    )
    kek = data["instance_key"]
    kek_node = ext_node.add(
        f"KEK [cyan]{kek['kek_fingerprint'] or '-'}[/cyan]  created {kek['kek_created_at'] or '-'}"
        f"  wrapped under {kek['wrapped_under_key_arn'] or '-'}"
    )
    if modules is None:
        kek_node.add("[dim]modules: not visible with this token's roles[/dim]")
    for module in modules or []:
        node = kek_node.add(
            f"module [bold]{module['name']}[/bold] ({module['algorithm']}, {module['state']})"
        )
        for key in keys[module["name"]]:
            node.add(f"v{key['version']}  {styled(key['state'])}  since {key['state_changed_at']}")
    if data["alerts"]:
        alerts = tree.add("[bold red]open alerts[/bold red]")
        for alert in data["alerts"]:
            alerts.add(f"[red]{alert['kind']}[/red] since {alert['opened_at']}: {alert['message']}")
    else:
        tree.add("[green]no open alerts[/green]")
    console.print(tree)
