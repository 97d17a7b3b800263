"""``ekms keys``: a module's key versions, and the actions on one of them."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._http import Client
from app.cli._options import YesOpt, with_client
from app.cli._render import confirm, done, listing, state_markup, styled

keys = typer.Typer(no_args_is_help=True, help="Module key versions (ekms.key_manager).")


@keys.command("list")
@with_client
def keys_list(client: Client, module: str) -> None:
    """List a module's key versions."""
    listing(
        client.call("GET", f"/modules/{module}/keys"),
        client.output,
        f"key versions of {module}",
        ["version", "state", "encryptions", "created", "changed", "reason"],
        lambda k: [
            k["version"],
            styled(k["state"]),
            k["encryption_count"],
            k["created_at"],
            k["state_changed_at"],
            k.get("state_reason"),
        ],
    )


_REASON_HELP = "why: kept on the key version and in the audit"
ReasonOpt = Annotated[
    str | None, typer.Option("--reason", help=f"{_REASON_HELP} (optional)", show_default=False)
]
RequiredReasonOpt = Annotated[str, typer.Option("--reason", help=f"{_REASON_HELP} (required)")]


def _act(client: Client, action: str, module: str, version: int, reason: str | None) -> None:
    body = None if reason is None else {"reason": reason}
    data = client.call("POST", f"/modules/{module}/keys/{version}/{action}", body=body)
    done(client.output, data, f"{module} v{data['version']}: {state_markup(data['state'])}")


def _confirmed(action: str, summary: str, question: str) -> None:
    """Add ``ekms keys ACTION MODULE VERSION [--reason TEXT]``, which asks ``question`` first
    unless ``--yes``."""

    @with_client
    def command(
        client: Client, module: str, version: int, reason: ReasonOpt = None, yes: YesOpt = False
    ) -> None:
        confirm(yes, question.format(module=module, version=version))
        _act(client, action, module, version, reason)

    keys.command(action, help=summary)(command)


@keys.command("revoke")
@with_client
def keys_revoke(
    client: Client, module: str, version: int, reason: RequiredReasonOpt, yes: YesOpt = False
) -> None:
    """Revoke a version: it decrypts only (a new active version replaces an active one)."""
    confirm(yes, f"Revoke {module} key version {version}?")
    _act(client, "revoke", module, version, reason)


_confirmed(
    "suspend",
    "Suspend a version: nothing encrypts or decrypts with it until resumed.",
    "Suspend {module} key version {version}? Its ciphertexts stop decrypting.",
)


@keys.command("resume")
@with_client
def keys_resume(client: Client, module: str, version: int, reason: ReasonOpt = None) -> None:
    """Resume a suspended version."""
    _act(client, "resume", module, version, reason)


_confirmed(
    "destroy",
    "Destroy a version's key material. Its ciphertexts are lost for good.",
    "DESTROY {module} key version {version}? Its ciphertexts can never be decrypted again.",
)
