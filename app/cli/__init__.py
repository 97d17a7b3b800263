"""The ``ekms`` command.

- ``serve``, ``migrate``, ``token`` (``_process``) and ``local-key`` (``_local_key``) run ekms
  itself, from the process settings (``_settings``).
- The admin commands (``status`` and ``sync``, ``audit`` (its ``tail`` in ``_audit_tail``,
  ``checkpoints`` in ``_audit_checkpoints``),
  ``config``, ``modules``, ``keys``, ``policies``, ``fields``, ``kek``: one module each) are
  clients of the REST API (``_http``) that only show its answers, as a table or as JSON or
  YAML (``-o``, ``_render``); a problem is printed by ``_problems``. The root callback keeps
  their client (``_options``) and answers ``--version``. Destructive actions ask for
  confirmation unless ``--yes``.
- Shell completion: ``ekms --install-completion`` (or ``--show-completion``).
"""

from __future__ import annotations

import typer

from app.cli import (
    _audit_checkpoints,  # noqa: F401  (registers ``ekms audit checkpoints``)
    _audit_tail,  # noqa: F401  (registers ``ekms audit tail``)
)
from app.cli._audit import audit_group
from app.cli._config import config
from app.cli._crypto import register as register_crypto
from app.cli._external import external
from app.cli._fields import fields
from app.cli._kek import kek
from app.cli._keys import keys
from app.cli._local_key import local_key
from app.cli._modules import modules
from app.cli._options import connect
from app.cli._policies import policies
from app.cli._process import migrate, serve, token
from app.cli._settings import load_settings
from app.cli._status import status, sync
from app.cli._xks import xks

__all__ = ["cli", "load_settings", "main"]

cli = typer.Typer(no_args_is_help=True, add_completion=True, help="External Key Management Service")
cli.callback()(connect)
cli.command()(serve)
cli.command()(migrate)
cli.command()(token)
cli.add_typer(local_key, name="local-key")
cli.command("status")(status)
cli.command("sync")(sync)
cli.add_typer(audit_group, name="audit")
cli.add_typer(config, name="config")
cli.add_typer(modules, name="modules")
cli.add_typer(keys, name="keys")
keys.add_typer(external, name="external")
cli.add_typer(policies, name="policies")
cli.add_typer(fields, name="fields")
cli.add_typer(kek, name="kek")
cli.add_typer(xks, name="xks")
register_crypto(cli)


def main() -> None:
    cli()
