"""``ekms status``: the key chain as a tree; ``ekms sync``: check the external key now."""

from __future__ import annotations

from typing import Any

from rich.markup import escape as e
from rich.tree import Tree

from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import Output, done, dump, spinner, state_markup, whole


def styled(state: str | None) -> str:
    return "-" if state is None else state_markup(state)


@with_client
def status(client: Client) -> None:
    """The key chain: external key, KEK, modules and key versions (those outside the external
    wrap under the local KEK), the audit signing key's public key, open alerts."""
    data = client.call("GET", "/ekms/status")
    modules = client.call("GET", "/modules", allow=(403,))
    keys: dict[str, list[dict[str, Any]]] = {}
    for module in modules or []:
        keys[module["name"]] = client.call("GET", f"/modules/{module['name']}/keys")
    if client.output is not Output.TABLE:
        dump({"status": data, "keys": keys}, client.output)
        return
    serving = (
        "[bold green]serving[/]"
        if data["serving"]
        else f"[bold red]NOT SERVING[/] ({e(str(data['serving_reason']))})"
    )
    policy = data.get("revocation_policy")
    tree = Tree(
        f"[bold]ekms key chain[/bold]  {serving}"
        + (f"  revocation policy [cyan]{e(policy)}[/cyan]" if policy else "")
    )
    kek = data["instance_key"]
    external = data.get("external_keys") or []
    if len(external) > 1:
        keys_node = tree.add(f"external keys ({len(external)}, each wraps the KEK)")
        for key in external:
            keys_node.add(_external_key_line(key))
        parent = tree
    else:
        ext = data["external_key"]
        parent = tree.add(
            f"external key [cyan]{e(ext['provider'])}:{e(ext['key_id'])}[/cyan]"
            f"  {styled(ext['status'])}"
            f"  last sync {ext['last_sync_at'] or 'never'}"
        )
    kek_node = parent.add(
        f"KEK [cyan]{kek['kek_fingerprint'] or '-'}[/cyan]  created {kek['kek_created_at'] or '-'}"
        f"  wrapped under {e(kek['wrapped_under_key_arn'] or '-')}"
    )
    wraps = {m["name"]: m for m in data.get("modules") or []}
    local_node: Tree | None = None
    if modules is None:
        kek_node.add("[dim]key versions: not visible with this token's roles[/dim]")
    for name, wrap in wraps.items():
        if wrap["external_wrap"]:
            holder = kek_node
        else:
            if local_node is None:
                local_node = tree.add(
                    f"local KEK [cyan]{data.get('local_kek_fingerprint') or '-'}[/cyan]"
                    "  under the local root key: [yellow]not revocable through the external "
                    "key[/yellow]"
                )
            holder = local_node
        down = "" if wrap["serving"] else f"  [red]not serving[/red] ({e(wrap['serving_reason'])})"
        module = next((m for m in modules or [] if m["name"] == name), None)
        about = f" ({module['algorithm']}, {module['state']})" if module else ""
        node = holder.add(f"module [bold]{e(name)}[/bold]{about}{down}")
        for key in keys.get(name, []):
            node.add(f"v{key['version']}  {styled(key['state'])}  since {key['state_changed_at']}")
    signing = data.get("audit_signing_key")
    if signing:
        tree.add(
            f"audit signing key [cyan]{e(signing['public_key'])}[/cyan]"
            f"  ({e(signing['algorithm'])}, id {signing['key_id']})"
        )
    if data.get("audit"):
        tree.add(_audit_line(data["audit"]))
    if data["alerts"]:
        alerts = tree.add("[bold red]open alerts[/bold red]")
        for alert in data["alerts"]:
            alerts.add(
                f"[red]{e(alert['kind'])}[/red] since {alert['opened_at']}: {e(alert['message'])}"
            )
    else:
        tree.add("[green]no open alerts[/green]")
    whole(tree)


def _audit_line(audit: dict[str, Any]) -> str:
    if audit["last_flush_ok"] is None:
        last = "no flush yet"
    else:
        outcome = "[green]ok[/green]" if audit["last_flush_ok"] else "[bold red]FAILED[/bold red]"
        last = f"last flush {audit['last_flush_at']} {outcome}"
    waiting = f", {audit['strict_waiters']} strict calls waiting" if audit["strict_waiters"] else ""
    return (
        f"audit [cyan]{audit['mode']}[/cyan], flush every {audit['flush_interval_seconds']:g} s;"
        f" {last}; {audit['pending']} pending{waiting}, {audit['failed_flushes']} failed flushes"
    )


def _external_key_line(key: dict[str, Any]) -> str:
    where = f" ({e(key['region'])})" if key.get("region") else ""
    first = "  [dim]first[/dim]" if key.get("first") else ""
    held = "" if key.get("rotation_marker") else "  [yellow]holds no EKEK of the KEK[/yellow]"
    return (
        f"[cyan]{e(key['provider'])}:{e(key['key_id'])}[/cyan]{where}  {styled(key['state'])}"
        f"  last sync {key['last_sync_at'] or 'never'}  id {key['id']}{first}{held}"
    )


@with_client
def sync(client: Client) -> None:
    """Check the external key's status and rotation now, as the scheduler does
    (ekms.key_manager)."""
    with spinner("checking the external key"):
        data = client.call("POST", "/ekms/sync")
    if data["inconclusive"]:
        message = "sync inconclusive: ekms was too busy to hear the KMS; it stays due"
    else:
        change = f"(was {styled(data['previous'])})" if data["changed"] else "(unchanged)"
        message = f"external key {styled(data['status'])} {change}"
        if data["reason"]:
            message += f": {e(data['reason'])}"
        if data["rewrapped"]:
            message += "; the KEK was rewrapped after an external rotation"
        for key in (data.get("keys") or [])[1:]:
            message += f"\n  and key {key['id']}: {styled(key['status'])}"
            if key.get("reason"):
                message += f": {e(key['reason'])}"
    done(client.output, data, message)
