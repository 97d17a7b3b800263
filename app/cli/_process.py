"""The commands that run ekms itself: ``serve``, ``migrate`` and ``token``."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from app.cli._options import OutputAfterOpt, output_of
from app.cli._render import Output, dump
from app.cli._settings import load_settings, logged_settings


def _run(coro: object) -> None:
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(coro)  # type: ignore[arg-type]


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

    settings = logged_settings()
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


def migrate(ctx: typer.Context, output: OutputAfterOpt = None) -> None:
    """Bring the database schema to head (Alembic)."""
    from app.infra.db.migrate import head_revision, upgrade_to_head

    settings = logged_settings()
    _run(upgrade_to_head(settings.effective_database_url))
    chosen = output_of(ctx, output)
    if chosen is Output.TABLE:
        typer.echo(f"schema at head ({head_revision()})")
    else:
        dump({"revision": head_revision(), "at_head": True}, chosen)


def token(
    ctx: typer.Context,
    sub: Annotated[str, typer.Option("--sub", help="the caller's subject")],
    role: Annotated[list[str], typer.Option("--role", help="a role; repeat for more")] = [],  # noqa: B006
    ttl: Annotated[int, typer.Option("--ttl", help="lifetime in seconds")] = 3600,
    output: OutputAfterOpt = None,
) -> None:
    """Mint a development token, signed with the HS256 secret the server checks: from the same
    settings as ``serve`` (EKMS_JWT_HS256_SECRET, or the development secret ``serve`` creates in
    EKMS_DATA_DIR). It never creates a secret: a missing one is refused."""
    from app.bootstrap import dev_jwt_secret_file, resolve_token_settings, uses_dev_secret
    from app.infra.system import SystemClock
    from app.infra.tokens import mint_dev_token

    settings = load_settings()
    if uses_dev_secret(settings):
        secret_file = dev_jwt_secret_file(settings).resolve()
        if not secret_file.is_file():
            typer.echo(
                f"ekms: no development JWT secret at {secret_file}: `ekms serve` creates it in "
                f"its data directory on first start. Run `ekms token` with the server's "
                f"settings (the same EKMS_DATA_DIR, now {settings.data_dir.resolve()}), or set "
                "EKMS_JWT_HS256_SECRET for both",
                err=True,
            )
            raise typer.Exit(2)
        typer.echo(f"ekms: signed with the development secret in {secret_file.parent}", err=True)
    tokens = resolve_token_settings(settings)
    if tokens is None or tokens.hs256_secret is None:
        typer.echo("ekms: no HS256 secret configured (EKMS_JWT_HS256_SECRET)", err=True)
        raise typer.Exit(2)
    minted = mint_dev_token(
        tokens.hs256_secret,
        sub=sub,
        roles=role,
        ttl_seconds=ttl,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        roles_claim=settings.jwt_roles_claim,
        clock=SystemClock(),
    )
    chosen = output_of(ctx, output)
    if chosen is Output.TABLE:  # the bare token, for TOKEN=$(ekms token ...)
        sys.stdout.write(minted + "\n")
    else:
        dump({"token": minted, "sub": sub, "roles": role, "expires_in": ttl}, chosen)
