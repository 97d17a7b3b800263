"""``ekms kek``: rotate the key encryption key."""

from __future__ import annotations

import typer

from app.cli._http import Client
from app.cli._options import YesOpt, with_client
from app.cli._render import confirm, done, spinner

kek = typer.Typer(no_args_is_help=True, help="The key encryption key (ekms.key_manager).")


@kek.command("rotate")
@with_client
def kek_rotate(client: Client, yes: YesOpt = False) -> None:
    """New KEK; every module key is rewrapped under it (field ciphertexts are untouched)."""
    confirm(yes, "Rotate the key encryption key now?")
    with spinner("rotating the KEK and rewrapping every module key"):
        data = client.call("POST", "/ekms/kek/rotate")
    done(
        client.output,
        data,
        f"KEK rotated: {data['old_kek_id']} -> {data['new_kek_id']} "
        f"(fingerprint {data['new_fingerprint']}), {data['rewrapped_keys']} key versions "
        f"rewrapped, {data.get('resealed_xks', 0)} XKS keys and secrets resealed",
    )
