"""The ``ekms`` admin commands: a client of the REST API (httpx) with rich output.

The server decides everything; these commands only call ``/api/v1`` and show the answers.
Every command takes ``--url`` (``EKMS_URL``, default http://127.0.0.1:8080) and ``--token``
(``EKMS_TOKEN``). Destructive actions ask for confirmation unless ``--yes``. Problems come
back as ``error: <status> <reason>: <detail>`` with exit code 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

DEFAULT_URL = "http://127.0.0.1:8080"
API = "/api/v1"

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

UrlOpt = Annotated[str, typer.Option("--url", envvar="EKMS_URL", help="ekms base URL")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="EKMS_TOKEN", help="bearer token", show_default=False),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]

STATE_STYLES = {
    "active": "bold green",
    "enabled": "bold green",
    "deactivated": "yellow",
    "unknown": "yellow",
    "unavailable": "yellow",
    "suspended": "magenta",
    "revoked": "red",
    "disabled": "bold red",
    "pending_deletion": "bold red",
    "deleted": "bold red",
    "destroyed": "dim red",
    "success": "green",
    "denied": "red",
    "failure": "red",
}


def styled(state: str | None) -> str:
    if state is None:
        return "-"
    style = STATE_STYLES.get(state, "white")
    return f"[{style}]{state}[/{style}]"


@dataclass(frozen=True)
class Client:
    url: str
    token: str | None

    def call(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        allow: tuple[int, ...] = (),
    ) -> Any:
        """The decoded answer; a problem is printed and exits 1 (unless its status is in allow)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            with httpx.Client(base_url=self.url.rstrip("/"), timeout=60.0) as http:
                response = http.request(
                    method, API + path, json=body, params=query, headers=headers
                )
        except httpx.HTTPError as exc:
            errors.print(
                f"[red]error:[/red] cannot reach ekms at {self.url} ({type(exc).__name__})"
            )
            raise typer.Exit(1) from None
        if response.status_code in allow:
            return None
        if response.status_code >= 400:
            _print_problem(response)
            raise typer.Exit(1)
        return response.json() if response.content else None


def _print_problem(response: httpx.Response) -> None:
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    reason = problem.get("reason", "")
    detail = problem.get("detail", response.reason_phrase)
    errors.print(f"[red]error:[/red] {response.status_code} {reason}: {detail}")
    for item in problem.get("errors") or []:
        errors.print(f"  - {item.get('field')}: {item.get('message')}")
    if response.status_code == 401:
        errors.print("  (set EKMS_TOKEN or pass --token; mint one with `ekms token`)")


def _confirm(yes: bool, question: str) -> None:
    if not yes and not typer.confirm(question, default=False):
        errors.print("aborted")
        raise typer.Exit(1)


def _dump(data: Any) -> None:
    console.print_json(json.dumps(data))


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)


@contextmanager
def _spinner(text: str) -> Iterator[None]:
    with Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=errors, transient=True
    ) as progress:
        progress.add_task(text, total=None)
        yield


# --- status -----------------------------------------------------------------------------------


def status(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """The key chain: external key, KEK, modules and key versions, open alerts."""
    client = Client(url, token)
    data = client.call("GET", "/ekms/status")
    modules = client.call("GET", "/modules", allow=(403,))
    keys: dict[str, list[dict[str, Any]]] = {}
    for module in modules or []:
        keys[module["name"]] = client.call("GET", f"/modules/{module['name']}/keys")
    if as_json:
        _dump({"status": data, "keys": keys})
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


# --- config -----------------------------------------------------------------------------------

config_app = typer.Typer(no_args_is_help=True, help="The EKMS configuration (ekms.admin).")


@config_app.command("show")
def config_show(
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """Show the configuration."""
    data = Client(url, token).call("GET", "/ekms/config")
    if as_json:
        _dump(data)
        return
    _table(
        "EKMS configuration",
        ["field", "value"],
        [[k, styled(v) if k == "external_key_status" else str(v)] for k, v in data.items()],
    )


@config_app.command("set")
def config_set(
    provider: Annotated[str | None, typer.Option(help="aws or local")] = None,
    key_id: Annotated[str | None, typer.Option("--key-id", help="key id, ARN or alias")] = None,
    region: Annotated[str | None, typer.Option()] = None,
    sync_interval: Annotated[int | None, typer.Option("--sync-interval", help="minutes")] = None,
    activate: Annotated[bool, typer.Option("--activate/--no-activate")] = True,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Create the configuration, or change the given fields of it."""
    client = Client(url, token)
    current = client.call("GET", "/ekms/config", allow=(404,)) or {}
    body: dict[str, Any] = {
        "provider": provider or current.get("provider"),
        "key_id": key_id or current.get("key_id"),
        "activate": activate,
    }
    if not body["provider"] or not body["key_id"]:
        errors.print("[red]error:[/red] not configured yet: pass --provider and --key-id")
        raise typer.Exit(1)
    for name, value in (
        ("region", region),
        ("sync_interval_minutes", sync_interval),
    ):
        if value is not None:
            body[name] = value
    data = client.call("PUT", "/ekms/config", body=body)
    verb = "updated" if current else "created"
    console.print(
        f"configuration {verb}: {data['provider']}:{data['key_id']} active={data['active']}"
    )


@config_app.command("test")
def config_test(url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Wrap and unwrap a probe key through the external KMS."""
    with _spinner("probing the external KMS"):
        data = Client(url, token).call("POST", "/ekms/config/test")
    if data["ok"]:
        console.print(f"[green]ok[/green]: {data['key_arn']} in {data['latency_ms']:.1f} ms")
        return
    console.print(f"[red]failed[/red]: {styled(data['status'])} {data['reason']}")
    raise typer.Exit(1)


# --- modules and keys -------------------------------------------------------------------------

modules_app = typer.Typer(no_args_is_help=True, help="Crypto modules.")


@modules_app.command("list")
def modules_list(
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List modules."""
    data = Client(url, token).call("GET", "/modules")
    if as_json:
        _dump(data)
        return
    rows = [
        [m["name"], m["algorithm"], m["state"], m["default_access"], m["description"]] for m in data
    ]
    _table("modules", ["name", "algorithm", "state", "default access", "description"], rows)


@modules_app.command("create")
def modules_create(
    name: str,
    algorithm: Annotated[str, typer.Option(help="AES-256-GCM or AES-256-SIV")] = "AES-256-GCM",
    default_access: Annotated[str, typer.Option("--default-access")] = "reject",
    description: Annotated[str, typer.Option()] = "",
    draft: Annotated[bool, typer.Option("--draft", help="create as a draft")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Create a module with its first key version."""
    body = {
        "name": name,
        "algorithm": algorithm,
        "default_access": default_access,
        "description": description,
        "state": "draft" if draft else "published",
    }
    data = Client(url, token).call("POST", "/modules", body=body)
    console.print(f"module [bold]{data['name']}[/bold] created ({data['algorithm']})")


@modules_app.command("rotate")
def modules_rotate(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """New active key version for a module (ekms.key_manager)."""
    data = Client(url, token).call("POST", f"/modules/{name}/keys/rotate")
    console.print(f"{name}: key version {data['version']} is {styled(data['state'])}")


keys_app = typer.Typer(no_args_is_help=True, help="Module key versions (ekms.key_manager).")


@keys_app.command("list")
def keys_list(
    module: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List a module's key versions."""
    data = Client(url, token).call("GET", f"/modules/{module}/keys")
    if as_json:
        _dump(data)
        return
    rows = [
        [
            str(k["version"]),
            styled(k["state"]),
            str(k["encryption_count"]),
            k["created_at"],
            k["state_changed_at"] or "-",
        ]
        for k in data
    ]
    _table(
        f"key versions of {module}", ["version", "state", "encryptions", "created", "changed"], rows
    )


def _key_action(action: str, module: str, version: int, client: Client) -> None:
    data = client.call("POST", f"/modules/{module}/keys/{version}/{action}")
    console.print(f"{module} v{data['version']}: {styled(data['state'])}")


@keys_app.command("revoke")
def keys_revoke(
    module: str,
    version: int,
    yes: YesOpt = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Revoke a version: it decrypts only (a new active version replaces an active one)."""
    _confirm(yes, f"Revoke {module} key version {version}?")
    _key_action("revoke", module, version, Client(url, token))


@keys_app.command("suspend")
def keys_suspend(
    module: str,
    version: int,
    yes: YesOpt = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Suspend a version: nothing encrypts or decrypts with it until resumed."""
    _confirm(yes, f"Suspend {module} key version {version}? Its ciphertexts stop decrypting.")
    _key_action("suspend", module, version, Client(url, token))


@keys_app.command("resume")
def keys_resume(
    module: str, version: int, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None
) -> None:
    """Resume a suspended version."""
    _key_action("resume", module, version, Client(url, token))


@keys_app.command("destroy")
def keys_destroy(
    module: str,
    version: int,
    yes: YesOpt = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Destroy a version's key material. Its ciphertexts are lost for good."""
    _confirm(
        yes,
        f"DESTROY {module} key version {version}? Its ciphertexts can never be decrypted again.",
    )
    _key_action("destroy", module, version, Client(url, token))


# --- policies and fields ----------------------------------------------------------------------

policies_app = typer.Typer(no_args_is_help=True, help="Module access policies (ekms.admin).")


@policies_app.command("list")
def policies_list(
    module: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List a module's access policies."""
    data = Client(url, token).call("GET", f"/modules/{module}/policies")
    if as_json:
        _dump(data)
        return
    rows = [
        [
            p["id"],
            f"{p['target_type']}:{p['target']}",
            ",".join(p["operations"]),
            p["result"],
            str(p["active"]),
        ]
        for p in data
    ]
    _table(f"policies of {module}", ["id", "target", "operations", "result", "active"], rows)


@policies_app.command("create")
def policies_create(
    module: str,
    role: Annotated[str | None, typer.Option(help="a role the policy targets")] = None,
    subject: Annotated[str | None, typer.Option(help="a token subject the policy targets")] = None,
    op: Annotated[
        list[str] | None, typer.Option("--op", help="encrypt, decrypt or rewrap; repeat")
    ] = None,
    result: Annotated[str, typer.Option(help="track, reject or strict_reject")] = "track",
    description: Annotated[str, typer.Option()] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Add an access policy to a module (name exactly one of --role or --subject)."""
    if (role is None) == (subject is None):
        errors.print("[red]error:[/red] name exactly one of --role or --subject")
        raise typer.Exit(2)
    body = {
        "target_type": "role" if role is not None else "subject",
        "target": role if role is not None else subject,
        "operations": op or ["encrypt", "decrypt"],
        "result": result,
        "description": description,
    }
    data = Client(url, token).call("POST", f"/modules/{module}/policies", body=body)
    console.print(f"policy {data['id']} created")


@policies_app.command("delete")
def policies_delete(
    policy_id: str, yes: YesOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None
) -> None:
    """Delete an access policy."""
    _confirm(yes, f"Delete policy {policy_id}?")
    Client(url, token).call("DELETE", f"/policies/{policy_id}")
    console.print(f"policy {policy_id} deleted")


fields_app = typer.Typer(no_args_is_help=True, help="Encrypted field configurations (ekms.admin).")


@fields_app.command("list")
def fields_list(
    url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List field configurations."""
    client = Client(url, token)
    data = client.call("GET", "/field-configs")
    if as_json:
        _dump(data)
        return
    names = {m["id"]: m["name"] for m in client.call("GET", "/modules")}
    rows = [
        [
            f["id"],
            f"{f['table']}.{f['column']}",
            names.get(f["module_id"], f["module_id"]),
            str(f["active"]),
        ]
        for f in data
    ]
    _table("field configurations", ["id", "field", "module", "active"], rows)


@fields_app.command("create")
def fields_create(
    field: Annotated[str, typer.Argument(help="table.column")],
    module: str,
    inactive: Annotated[bool, typer.Option("--inactive")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
) -> None:
    """Configure TABLE.COLUMN to be encrypted by MODULE."""
    table, _, column = field.partition(".")
    if not column:
        errors.print("[red]error:[/red] name the field as table.column")
        raise typer.Exit(2)
    body = {"table": table, "column": column, "module": module, "active": not inactive}
    data = Client(url, token).call("POST", "/field-configs", body=body)
    console.print(f"field {table}.{column} -> {module} ({data['id']})")


@fields_app.command("delete")
def fields_delete(
    config_id: str, yes: YesOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None
) -> None:
    """Delete a field configuration."""
    _confirm(yes, f"Delete field configuration {config_id}?")
    Client(url, token).call("DELETE", f"/field-configs/{config_id}")
    console.print(f"field configuration {config_id} deleted")


# --- audit and KEK ----------------------------------------------------------------------------


def audit(
    since: Annotated[str | None, typer.Option(help="ISO time with zone, inclusive")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time with zone, exclusive")] = None,
    actor: Annotated[str | None, typer.Option()] = None,
    action: Annotated[str | None, typer.Option()] = None,
    module: Annotated[str | None, typer.Option()] = None,
    result: Annotated[str | None, typer.Option(help="success, denied or failure")] = None,
    limit: Annotated[int, typer.Option(help="events per page")] = 50,
    cursor: Annotated[str | None, typer.Option(help="continue after this page")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="follow every page")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Audit events, oldest first (ekms.auditor)."""
    client = Client(url, token)
    params: dict[str, Any] = {
        "since": since,
        "until": until,
        "actor": actor,
        "action": action,
        "module": module,
        "result": result,
        "limit": limit,
    }
    while True:
        page = client.call("GET", "/audit", params={**params, "cursor": cursor})
        if as_json:
            _dump(page)
        else:
            rows = [
                [
                    e["at"],
                    e["actor"],
                    e["action"],
                    styled(e["result"]),
                    e["module"] or "-",
                    e["target"] or "-",
                    str(e["count"]),
                ]
                for e in page["items"]
            ]
            _table("audit", ["at", "actor", "action", "result", "module", "target", "count"], rows)
        cursor = page["next_cursor"]
        if cursor is None:
            return
        if not all_pages:
            errors.print(f"more: ekms audit --cursor {cursor}  (or --all)", soft_wrap=True)
            return


kek_app = typer.Typer(no_args_is_help=True, help="The key encryption key (ekms.key_manager).")


@kek_app.command("rotate")
def kek_rotate(yes: YesOpt = False, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """New KEK; every module key is rewrapped under it (field ciphertexts are untouched)."""
    _confirm(yes, "Rotate the key encryption key now?")
    with _spinner("rotating the KEK and rewrapping every module key"):
        data = Client(url, token).call("POST", "/ekms/kek/rotate")
    console.print(
        f"KEK rotated: {data['old_kek_id']} -> {data['new_kek_id']} "
        f"(fingerprint {data['new_fingerprint']}), {data['rewrapped_keys']} key versions rewrapped"
    )


def register_admin_commands(cli: typer.Typer) -> None:
    cli.command("status")(status)
    cli.command("audit")(audit)
    cli.add_typer(config_app, name="config")
    cli.add_typer(modules_app, name="modules")
    cli.add_typer(keys_app, name="keys")
    cli.add_typer(policies_app, name="policies")
    cli.add_typer(fields_app, name="fields")
    cli.add_typer(kek_app, name="kek")
