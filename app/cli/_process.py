"""The ``ekms`` command: serve, migrate, token, local-key (and the admin commands)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from app.cli_admin import register_admin_commands
from app.infra.logging import configure_logging
from app.infra.settings import Settings

cli = typer.Typer(
    no_args_is_help=True, add_completion=False, help="External Key Management Service"
)


def load_settings() -> Settings:
    """The process settings; a bad ``EKMS_*`` value is a clear message and exit code 2."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            where = f"EKMS_{name}: " if name else ""
            typer.echo(f"ekms: {where}{error['msg'].removeprefix('Value error, ')}", err=True)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(coro)  # type: ignore[arg-type]


@cli.command()
def serve(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="processes serving the same ports (SO_REUSEPORT; needs Postgres); "
            "default EKMS_WORKERS (1)",
        ),
    ] = None,
) -> None:
    """Run the REST API, the gRPC server and the scheduler in one process (or N workers)."""
    from app.bootstrap import StartupError
    from app.server import serve as serve_async
    from app.server import serve_workers

    settings = _settings()
    count = workers or settings.workers
    try:
        if count > 1:
            code = serve_workers(settings, count, _run)
        else:
            _run(serve_async(settings))
            code = 0
    except StartupError as exc:
        typer.echo(f"ekms: {exc}", err=True)
        raise typer.Exit(2) from None
    if code:
        raise typer.Exit(code)


@cli.command()
def migrate() -> None:
    """Bring the database schema to head (Alembic)."""
    from app.infra.db.migrate import head_revision, upgrade_to_head

    settings = _settings()
    _run(upgrade_to_head(settings.effective_database_url))
    typer.echo(f"schema at head ({head_revision()})")


@cli.command()
def token(
    sub: Annotated[str, typer.Option("--sub", help="the caller's subject")],
    role: Annotated[list[str], typer.Option("--role", help="a role; repeat for more")] = [],  # noqa: B006
    ttl: Annotated[int, typer.Option("--ttl", help="lifetime in seconds")] = 3600,
) -> None:
    """Mint a development token (only when an HS256 secret is configured)."""
    from app.bootstrap import resolve_token_settings
    from app.infra.system import SystemClock
    from app.infra.tokens import mint_dev_token

    settings = load_settings()
    tokens = resolve_token_settings(settings)
    if tokens is None or tokens.hs256_secret is None:
        typer.echo("ekms: no HS256 secret configured (EKMS_JWT_HS256_SECRET)", err=True)
        raise typer.Exit(2)
    sys.stdout.write(
        mint_dev_token(
            tokens.hs256_secret,
            sub=sub,
            roles=role,
            ttl_seconds=ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            roles_claim=settings.jwt_roles_claim,
            clock=SystemClock(),
        )
        + "\n"
    )


local_key = typer.Typer(
    no_args_is_help=True,
    help="Development only: set the local root key's state, as a customer would set an "
    "external key's (the embedded default, EKMS_KMS_PROVIDER=local).",
)
cli.add_typer(local_key, name="local-key")

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


def _set_local_key(target: str) -> None:
    from app.domain.errors import InvalidInput
    from app.infra.kms.local_state import LocalKeyState, set_state, state_file_for

    file = _local_key_file()
    try:
        previous = set_state(file, LocalKeyState(target))
    except InvalidInput as exc:
        typer.echo(f"ekms: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"local root key: {target} (was {previous.value}; {state_file_for(file)})")


@local_key.command("disable")
def local_key_disable() -> None:
    """Disable the local root key: ekms refuses EXTERNAL_KEY_DISABLED until it is enabled."""
    _set_local_key("disabled")
    typer.echo(_NOTICED)


@local_key.command("enable")
def local_key_enable() -> None:
    """Enable the local root key again (not after delete)."""
    _set_local_key("enabled")
    typer.echo("A running server serves again after its next status sync.")


@local_key.command("delete")
def local_key_delete(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")] = False,
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
    _set_local_key("deleted")
    typer.echo(_NOTICED)


register_admin_commands(cli)


def main() -> None:
    cli()
