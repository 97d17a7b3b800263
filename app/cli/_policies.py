"""``ekms policies``: a module's access policies."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from app.cli._http import Client
from app.cli._options import YesOpt, delete, with_client
from app.cli._render import Output, cell, done, dump, fail, listing, record, say, styled, table

policies = typer.Typer(no_args_is_help=True, help="Module access policies (ekms.admin).")

_OPS_HELP = "encrypt, decrypt, rewrap or mac; repeat for more"
RoleOpt = Annotated[list[str] | None, typer.Option("--role", help="the role the policy targets")]
SubjectOpt = Annotated[
    list[str] | None, typer.Option("--subject", help="the token subject the policy targets")
]
ResultHelp = "track (grant and record), reject or strict_reject"
CodeOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--justification-code",
        help="track only: grant only calls justified with this reason code (implies "
        "--require-justification); repeat for more",
    ),
]
_FIELDS = (
    "target_type",
    "target",
    "operations",
    "result",
    "active",
    "description",
    "require_justification",
    "justification_codes",
)


def _justification(policy: dict[str, Any]) -> str:
    """How a policy's justification rule reads in a table: ``-``, ``any code`` or the codes."""
    if not policy.get("require_justification"):
        return "-"
    return ", ".join(policy.get("justification_codes") or ()) or "any code"


@policies.command("list")
@with_client
def policies_list(client: Client, module: str) -> None:
    """List a module's access policies."""
    listing(
        client.call("GET", f"/modules/{module}/policies"),
        client.output,
        f"policies of {module}",
        ["id", "target", "operations", "result", "justification", "active", "description"],
        lambda p: [
            p["id"],
            f"{p['target_type']}:{p['target']}",
            p["operations"],
            p["result"],
            _justification(p),
            p["active"],
            p["description"],
        ],
        ids=frozenset({"id", "target"}),
    )


@policies.command("show")
@with_client
def policies_show(client: Client, policy_id: str) -> None:
    """Show one access policy (by its full id)."""
    record(client.call("GET", f"/policies/{policy_id}"), client.output, f"policy {policy_id}")


def _target(roles: list[str] | None, subjects: list[str] | None) -> tuple[str, str] | None:
    """The one target named, ``None`` if none; more than one is refused (exit 2)."""
    named = [("role", r) for r in roles or []] + [("subject", s) for s in subjects or []]
    if len(named) > 1:
        listed = ", ".join(f"--{kind} {value}" for kind, value in named)
        raise fail(
            f"a policy targets one role or one subject, and {len(named)} were given ({listed}): "
            "nothing was created; run the command once per target",
            code=2,
        )
    return named[0] if named else None


@policies.command("create")
@with_client
def policies_create(
    client: Client,
    module: str,
    role: RoleOpt = None,
    subject: SubjectOpt = None,
    op: Annotated[
        list[str] | None,
        typer.Option("--op", help=f"{_OPS_HELP}; left out: encrypt and decrypt (not rewrap)"),
    ] = None,
    result: Annotated[str, typer.Option(help=ResultHelp)] = "track",
    description: Annotated[str, typer.Option()] = "",
    inactive: Annotated[bool, typer.Option("--inactive", help="create it switched off")] = False,
    require_justification: Annotated[
        bool,
        typer.Option("--require-justification", help="track only: grant only calls that send one"),
    ] = False,
    justification_code: CodeOpt = None,
) -> None:
    """Add an access policy to a module. Name exactly one target: one --role or one
    --subject (a repeated one is refused: create one policy per target)."""
    target = _target(role, subject)
    if target is None:
        raise fail("name the target: one --role or one --subject", code=2)
    body = {
        "target_type": target[0],
        "target": target[1],
        "operations": op or ["encrypt", "decrypt"],
        "result": result,
        "active": not inactive,
        "description": description,
        "require_justification": require_justification or bool(justification_code),
        "justification_codes": justification_code or [],
    }
    data = client.call("POST", f"/modules/{module}/policies", body=body)
    ops = ",".join(data["operations"])
    message = f"policy {data['id']} created: {target[0]} {target[1]}, {ops} -> {data['result']}"
    done(client.output, data, escape(message))


@policies.command("update")
@with_client
def policies_update(
    client: Client,
    policy_id: str,
    role: RoleOpt = None,
    subject: SubjectOpt = None,
    op: Annotated[
        list[str] | None,
        typer.Option("--op", help=f"{_OPS_HELP}; given, they replace the policy's operations"),
    ] = None,
    result: Annotated[str | None, typer.Option(help=ResultHelp)] = None,
    description: Annotated[str | None, typer.Option()] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="switch it on or off")
    ] = None,
    require_justification: Annotated[
        bool | None,
        typer.Option(
            "--require-justification/--no-require-justification",
            help="grant only justified calls, or drop the requirement (and its codes)",
        ),
    ] = None,
    justification_code: CodeOpt = None,
) -> None:
    """Change the given parts of an access policy (by its full id); the others are kept."""
    target = _target(role, subject)
    if require_justification is False:
        justification_code = justification_code or []
    elif justification_code:
        require_justification = True
    changes: dict[str, Any] = {
        k: v
        for k, v in (
            ("operations", op),
            ("result", result),
            ("description", description),
            ("active", active),
            ("require_justification", require_justification),
            ("justification_codes", justification_code),
        )
        if v is not None
    }
    if target is not None:
        changes |= {"target_type": target[0], "target": target[1]}
    if not changes:
        raise fail("nothing to change: give at least one option (see --help)", code=2)
    current = client.call("GET", f"/policies/{policy_id}")
    body = {name: current[name] for name in _FIELDS} | changes
    data = client.call("PUT", f"/policies/{policy_id}", body=body)
    done(client.output, data, escape(f"policy {data['id']} updated"))


@policies.command("delete")
@with_client
def policies_delete(client: Client, policy_id: str, yes: YesOpt = False) -> None:
    """Delete an access policy (by its full id)."""
    delete(client, f"/policies/{policy_id}", "policy", policy_id, yes=yes)


@policies.command("explain")
@with_client
def policies_explain(
    client: Client,
    module: str,
    subject: Annotated[str, typer.Option("--subject", help="the caller's token subject")],
    op: Annotated[str, typer.Option("--op", help="encrypt, decrypt, rewrap or mac")],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="a role of the caller; repeat for more")
    ] = None,
    justification: Annotated[
        str | None,
        typer.Option(help="the call's x-ekms-justification, CODE[:text]; left out: none"),
    ] = None,
) -> None:
    """Explain how a module's policies decide an operation for a subject and its roles (a dry
    run: nothing is called or changed)."""
    body = {"subject": subject, "roles": role or [], "operation": op}
    if justification is not None:
        body["justification"] = justification
    data = client.call("POST", f"/modules/{module}/policies/explain", body=body)
    if client.output is not Output.TABLE:
        dump(data, client.output)
        return
    say(escape(f"{'allowed' if data['allowed'] else 'denied'}: {data['explanation']}"))
    table(
        f"policies of {module} evaluated",
        ["id", "target", "operations", "result", "justification", "active", "matched", "effect"],
        [
            [
                cell(p["id"]),
                cell(f"{p['target_type']}:{p['target']}"),
                cell(p["operations"]),
                styled(p["result"]),
                cell(_justification(p)),
                cell(p["active"]),
                cell(p["matched"]),
                cell(p["effect"]),
            ]
            for p in data["policies"]
        ],
        frozenset({"id", "target"}),
    )
