"""What the admin commands show: rich tables and trees on stdout, JSON, coloured states, and the
questions and progress on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)

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
    """A state in its colour (rich markup); ``-`` for none."""
    if state is None:
        return "-"
    style = STATE_STYLES.get(state, "white")
    return f"[{style}]{state}[/{style}]"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned exit."""
    errors.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def confirm(yes: bool, question: str) -> None:
    """Ask ``question`` unless ``--yes``; a no prints ``aborted`` and exits 1."""
    if not yes and not typer.confirm(question, default=False):
        errors.print("aborted")
        raise typer.Exit(1)


def dump(data: Any) -> None:
    """The raw JSON answer (``--json``)."""
    console.print_json(json.dumps(data))


def table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    """A titled table of ``rows`` under ``columns``."""
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*row)
    console.print(grid)


def listing(
    data: list[dict[str, Any]],
    as_json: bool,
    title: str,
    columns: list[str],
    row: Callable[[dict[str, Any]], list[str]],
) -> None:
    """The answer as JSON (``--json``), or a table with one ``row`` per item."""
    if as_json:
        dump(data)
    else:
        table(title, columns, [row(item) for item in data])


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """A transient spinner with the elapsed time on stderr while a slow call runs."""
    with Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=errors, transient=True
    ) as progress:
        progress.add_task(text, total=None)
        yield
