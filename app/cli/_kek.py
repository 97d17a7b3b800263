"""``ekms kek``: rotate the key encryption key (or, with ``--local``, the local KEK)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli._http import Client
from app.cli._options import YesOpt, with_client
from app.cli._render import confirm, done, spinner

kek = typer.Typer(no_args_is_help=True, help="The key encryption key (ekms.key_manager).")


@kek.command("rotate")
@with_client
def kek_rotate(
    client: Client,
    yes: YesOpt = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local", help="Rotate the local KEK (modules with external_wrap=false) instead."
        ),
    ] = False,
) -> None:
    """New KEK; every module key is rewrapped under it (field ciphertexts are untouched)."""
    which = "local KEK" if local else "KEK"
    confirm(yes, f"Rotate the {'local KEK' if local else 'key encryption key'} now?")
    with spinner(f"rotating the {which} and rewrapping the module keys under it"):
        data = client.call("POST", "/ekms/local-kek/rotate" if local else "/ekms/kek/rotate")
    resealed = "" if local else f", {data.get('resealed_xks', 0)} XKS keys and secrets resealed"
    done(
        client.output,
        data,
        f"{which} rotated: {data['old_kek_id']} -> {data['new_kek_id']} "
        f"(fingerprint {data['new_fingerprint']}), {data['rewrapped_keys']} key versions "
        f"rewrapped{resealed}",
    )
