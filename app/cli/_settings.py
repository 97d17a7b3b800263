"""The process settings for the commands that run ekms itself (serve, migrate, token)."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from app.infra.logging import configure_logging
from app.infra.settings import Settings


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


def logged_settings() -> Settings:
    """The process settings, with logging configured from them."""
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    return settings
