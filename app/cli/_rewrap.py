"""``ekms rewrap``: move a column export to the active key version, over REST
(``/crypto/rewrap-batch``), in batches, resuming where an earlier run stopped.

The input is NDJSON, one value per line: an object with ``ciphertext`` (and optionally ``id``,
``context`` in base64, and its own ``module`` or ``table``/``column``), or a bare ``ekms:v1:``
line. Each output line is the input object with ``ciphertext`` moved, plus ``changed`` and
``key_version``; a value that fails keeps its ciphertext and gains ``error`` (its reason and
detail), and the run ends with exit code 1 once every line is written. Output lines are
written and synced a batch at a time, so after a crash or Ctrl-C the output holds whole lines
only: running the same command again skips the lines already written (a trailing partial line
is dropped first).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import Output, dump, errors, fail

MAX_BATCH = 1000


def _entries(source: Path, skip: int) -> Iterator[tuple[int, dict[str, Any]]]:
    with source.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if number <= skip or not text:
                continue
            if text.startswith("{"):
                try:
                    entry = json.loads(text)
                except json.JSONDecodeError:
                    raise fail(f"{source}:{number}: not a JSON object") from None
                if not isinstance(entry.get("ciphertext"), str):
                    raise fail(f'{source}:{number}: no "ciphertext" string')
            else:
                entry = {"ciphertext": text}
            yield number, entry


def _written(destination: Path) -> int:
    """Whole lines already in ``destination``; a trailing partial line is cut off."""
    if not destination.exists():
        return 0
    data = destination.read_bytes()
    whole = data.rfind(b"\n") + 1
    if whole < len(data):
        with destination.open("r+b") as out:
            out.truncate(whole)
    return data[:whole].count(b"\n")


def _item(entry: dict[str, Any], number: int) -> dict[str, Any]:
    item = {"id": str(number), "ciphertext": entry["ciphertext"]}
    for name in ("context", "module", "table", "column"):
        if name in entry:
            item[name] = entry[name]
    return item


def _moved(entry: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    if result.get("error"):
        problem = result["error"]
        error = {"reason": problem.get("reason"), "detail": problem.get("detail")}
        return {**entry, "error": error}
    return {
        **entry,
        "ciphertext": result["ciphertext"],
        "changed": result["changed"],
        "key_version": result["key_version"],
    }


@with_client
def rewrap(
    client: Client,
    source: Annotated[Path, typer.Option("--in", help="NDJSON: one ciphertext per line")],
    destination: Annotated[Path, typer.Option("--out", help="NDJSON, resumed if it exists")],
    module: Annotated[str | None, typer.Option("--module", help="the default target")] = None,
    table: Annotated[str | None, typer.Option("--table", help="with --column")] = None,
    column: Annotated[str | None, typer.Option("--column", help="the field's column")] = None,
    batch: Annotated[int, typer.Option(help=f"values per call (1 to {MAX_BATCH})")] = 100,
) -> None:
    """Move every value of an NDJSON export to its module's active key version (ekms.rewrap
    is decided by the module's policies, per value)."""
    if not 1 <= batch <= MAX_BATCH:
        raise fail(f"--batch must be 1 to {MAX_BATCH}")
    if not source.is_file():
        raise fail(f"no such file: {source}")
    if source.resolve() == destination.resolve():
        raise fail("--out must be another file than --in")
    target: dict[str, Any] = {}
    if module:
        target = {"module": module}
    elif table and column:
        target = {"table": table, "column": column}
    total = sum(1 for line in source.open(encoding="utf-8") if line.strip())
    done = _written(destination)
    counts = {"written": 0, "changed": 0, "failed": 0}
    pending: list[tuple[int, dict[str, Any]]] = []
    progress = Progress(
        TextColumn("rewrap"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )
    with progress, destination.open("a", encoding="utf-8") as out:
        task = progress.add_task("rewrap", total=total, completed=done)

        def flush() -> None:
            body = {**target, "items": [_item(entry, n) for n, entry in pending]}
            results = client.call("POST", "/crypto/rewrap-batch", body=body)["results"]
            for (_, entry), result in zip(pending, results, strict=True):
                moved = _moved(entry, result)
                counts["failed" if "error" in moved else "written"] += 1
                counts["changed"] += bool(moved.get("changed"))
                out.write(json.dumps(moved, separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())
            progress.advance(task, len(pending))
            pending.clear()

        for number, entry in _entries(source, done):
            pending.append((number, entry))
            if len(pending) == batch:
                flush()
        if pending:
            flush()
    summary = {"in": str(source), "out": str(destination), "resumed_after": done, **counts}
    if client.output is Output.TABLE:
        typer.echo(
            f"{counts['written'] + counts['failed']} values written to {destination} "
            f"({counts['changed']} moved, {counts['failed']} failed"
            + (f"; resumed after line {done}" if done else "")
            + ")"
        )
    else:
        dump(summary, client.output)
    if counts["failed"]:
        raise typer.Exit(1)
