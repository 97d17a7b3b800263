"""``ekms local-key``: set the embedded local root key's state, as a customer would set an
external key's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli._options import OutputAfterOpt, output_of
from app.cli._render import Output, dump
from app.infra.settings import Settings

local_key = typer.Typer(
    no_args_is_help=True,
    help="Development only: set the local root key's state, as a customer would set an "
    "external key's (the embedded default, EKMS_KMS_PROVIDER=local).",
)

_SERVES_AGAIN = "A running server serves again after its next status sync."
_NOTICED = (
    "A running server refuses wrap and unwrap at once, and fails closed at its next status "
    "sync (POST /api/v1/ekms/sync: at once)."
)


def _local_key_file() -> Path:
    settings = Settings()
    if settings.kms_provider != "local":
        typer.echo("ekms: local-key needs EKMS_KMS_PROVIDER=local (the embedded default)", err=True)
        raise typer.Exit(2)
    return settings.effective_local_root_key_file


def _set_local_key(ctx: typer.Context, output: Output | None, target: str, note: str) -> None:
    from app.domain.errors import InvalidInput
    from app.infra.kms.local_state import LocalKeyState, set_state, state_file_for

    file = _local_key_file()
    try:
        previous = set_state(file, LocalKeyState(target))
    except InvalidInput as exc:
        typer.echo(f"ekms: {exc}", err=True)
        raise typer.Exit(2) from None
    chosen = output_of(ctx, output)
    if chosen is not Output.TABLE:
        state = {"state": target, "previous": previous.value, "file": str(state_file_for(file))}
        dump(state, chosen)
        return
    typer.echo(f"local root key: {target} (was {previous.value}; {state_file_for(file)})")
    typer.echo(note)


@local_key.command("disable")
def local_key_disable(ctx: typer.Context, output: OutputAfterOpt = None) -> None:
    """Disable the local root key: ekms refuses EXTERNAL_KEY_DISABLED until it is enabled."""
    _set_local_key(ctx, output, "disabled", _NOTICED)


@local_key.command("enable")
def local_key_enable(ctx: typer.Context, output: OutputAfterOpt = None) -> None:
    """Enable the local root key again (not after delete)."""
    _set_local_key(ctx, output, "enabled", _SERVES_AGAIN)


@local_key.command("delete")
def local_key_delete(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
    output: OutputAfterOpt = None,
) -> None:
    """Delete the local root key: its file is overwritten and removed. IRREVERSIBLE: everything
    wrapped under it (the KEK, so every DEK and every ciphertext) is unreadable for good."""
    if Settings().local_root_key is not None:
        typer.echo(
            "ekms: the root key comes from EKMS_LOCAL_ROOT_KEY, not a file: delete it where it "
            "is kept",
            err=True,
        )
        raise typer.Exit(2)
    file = _local_key_file()
    if not yes:
        typer.confirm(
            f"Destroy the local root key {file}? Every value encrypted under it becomes "
            "unreadable, and this cannot be undone",
            abort=True,
        )
    _set_local_key(ctx, output, "deleted", _NOTICED)
