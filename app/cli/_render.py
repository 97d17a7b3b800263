"""What the admin commands show, in the format ``-o/--output`` names: rich tables and trees
(``table``), or the server's answer as JSON or YAML, on stdout; questions, progress and errors on
stderr.

JSON and YAML are the answer itself, written as plain text (never wrapped or cut). A list that is
followed page by page (``--all``) is NDJSON in JSON, one item a line, and one YAML sequence. Table
cells are plain text (a server value is never read as rich markup): ``-`` for none, ``yes``/``no``
for booleans. When stdout is not a terminal, a table is as wide as its widest row, so nothing is
cut; on a terminal, id columns keep their full width and other columns wrap.
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
import yaml
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

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


class Output(enum.StrEnum):
    """What ``-o/--output`` prints: a table (for people), or the answer as JSON or YAML."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


def cell(value: Any) -> Text:
    """A table cell as plain text: ``-`` for none, ``yes``/``no``, a list joined by commas."""
    if value is None or value == "":
        return Text("-")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list | tuple):
        return Text(",".join(str(item) for item in value) or "-")
    if isinstance(value, dict):
        return Text(json.dumps(value, ensure_ascii=False) if value else "-")
    return Text(str(value))


def styled(state: str | None) -> Text:
    """A state in its colour; ``-`` for none."""
    if state is None:
        return Text("-")
    return Text(state, style=STATE_STYLES.get(state, "white"))


def state_markup(state: str) -> str:
    """A state in its colour, as rich markup for a message."""
    style = STATE_STYLES.get(state, "white")
    return f"[{style}]{escape(state)}[/{style}]"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on stderr (markup escaped); the caller raises the returned exit."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def say(message: str) -> None:
    """One line for people on stdout; ``message`` is rich markup (escape server values)."""
    console.print(message, soft_wrap=True)


def done(output: Output, data: Any, message: str) -> None:
    """After an action: ``message`` (rich markup) for people, or the answer as JSON or YAML."""
    if output is Output.TABLE:
        say(message)
    else:
        dump(data, output)


def confirm(yes: bool, question: str) -> None:
    """Ask ``question`` unless ``--yes``; a no prints ``aborted`` and exits 1."""
    if not yes and not typer.confirm(question, default=False):
        errors.print("aborted")
        raise typer.Exit(1)


def dump(data: Any, output: Output = Output.JSON) -> None:
    """The answer as one JSON document (indented) or one YAML document."""
    if output is Output.YAML:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def stream(items: Iterable[Any], output: Output) -> None:
    """Items as they come: NDJSON (one compact JSON a line) or the items of one YAML sequence."""
    for item in items:
        if output is Output.YAML:
            sys.stdout.write(yaml.safe_dump([item], sort_keys=False, allow_unicode=True))
        else:
            sys.stdout.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def as_output(output: Output | bool) -> Output:
    """The format; a bool is the older ``--json`` flag (true: JSON, false: a table)."""
    if isinstance(output, Output):
        return output
    return Output.JSON if output else Output.TABLE


def show(data: Any, output: Output | bool, as_table: Callable[[], None]) -> None:
    """``data`` as JSON or YAML, or what ``as_table`` prints."""
    output = as_output(output)
    if output is Output.TABLE:
        as_table()
    else:
        dump(data, output)


def table(
    title: str, columns: list[str], rows: list[list[Text]], ids: frozenset[str] = frozenset()
) -> None:
    """A titled table of ``rows`` under ``columns``; the ``ids`` columns are never cut."""
    grid = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        if column in ids:
            widest = max((len(row[index].plain) for row in rows), default=0)
            grid.add_column(column, no_wrap=True, overflow="fold", min_width=widest)
        else:
            grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*row)
    whole(grid)


def whole(renderable: RenderableType) -> None:
    """Print a table or tree; piped, as wide as it needs, so a script reads every value whole."""
    if console.is_terminal:
        console.print(renderable)
        return
    width = Measurement.get(console, console.options.update(width=100_000), renderable).maximum
    Console(file=console.file, width=max(width, 20), highlight=False).print(renderable)


def listing(
    data: list[dict[str, Any]],
    output: Output | bool,
    title: str,
    columns: list[str],
    row: Callable[[dict[str, Any]], list[Any]],
    ids: frozenset[str] = frozenset({"id"}),
) -> None:
    """The answer as JSON or YAML, or a table with one ``row`` (of cells) per item."""
    show(data, output, lambda: table(title, columns, [_cells(row(item)) for item in data], ids))


def record(data: dict[str, Any], output: Output, title: str) -> None:
    """One resource as JSON or YAML, or a table of its fields and values."""
    rows = [
        [cell(key), styled(value) if key.endswith(("state", "status")) else cell(value)]
        for key, value in data.items()
    ]
    show(data, output, lambda: table(title, ["field", "value"], rows, frozenset({"value"})))


def _cells(values: list[Any]) -> list[Text]:
    return [value if isinstance(value, Text) else cell(value) for value in values]


@contextmanager
def spinner(text: str) -> Iterator[None]:
    """A transient spinner with the elapsed time on stderr while a slow call runs."""
    with Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=errors, transient=True
    ) as progress:
        progress.add_task(text, total=None)
        yield
