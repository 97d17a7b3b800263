"""``ekms audit tail``: the newest events, then (``-f``) the new ones as they are written.

It polls ``/audit`` oldest first from the newest event seen (``since`` its time, skipping the
ids already printed at that time), following the cursor within each poll. With ``-o json`` the
events are NDJSON, one a line; ``--out FILE`` appends them to FILE as JSON lines whatever
``-o`` says, for a sidecar to ship to a SIEM. ``--format rfc5424`` writes syslog messages
(``_syslog``) instead, one a line, to stdout or ``--out``; ``--syslog udp://HOST:PORT`` also
sends each event to a syslog receiver as one datagram.
"""

from __future__ import annotations

import enum
import json
import socket
import time
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from app.cli._audit import COLUMNS, IDS, audit_group, row
from app.cli._http import Client
from app.cli._options import with_client
from app.cli._render import Output, stream, table
from app.cli._syslog import UdpSyslog, rfc5424


class Format(enum.StrEnum):
    JSON = "json"
    RFC5424 = "rfc5424"


@audit_group.command("tail")
@with_client
def tail(
    client: Client,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, max=500, help="newest first")] = 10,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new events until interrupted")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.2, help="seconds between polls with -f")] = 2.0,
    out: Annotated[
        Path | None, typer.Option(help="append the events to this file as JSON lines")
    ] = None,
    action: Annotated[str | None, typer.Option()] = None,
    module: Annotated[str | None, typer.Option()] = None,
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="lines to stdout or --out: JSON, or syslog RFC 5424"),
    ] = None,
    syslog: Annotated[
        str | None, typer.Option(help="also send each event to udp://HOST[:PORT] (RFC 5424)")
    ] = None,
) -> None:
    """The newest audit events; with -f, then every new one (ekms.auditor)."""
    try:
        sender = UdpSyslog(syslog) if syslog is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--syslog") from None
    filters = {"action": action, "module": module}
    newest: list[dict[str, Any]] = []
    if lines:
        answer = client.call("GET", "/audit", params={**filters, "order": "desc", "limit": lines})
        newest = list(reversed(answer["items"]))
    sink = out.open("a", encoding="utf-8") if out is not None else None
    emit = _Emitter(client.output, fmt, sink, sender)
    try:
        cursor = _Mark()
        emit(cursor.advance(newest))
        while follow:
            time.sleep(interval)
            emit(cursor.advance(_since(client, filters, cursor.at)))
    except KeyboardInterrupt:
        return
    finally:
        if sink is not None:
            sink.close()
        if sender is not None:
            sender.close()


class _Mark:
    """Where the tail is: the newest time printed and the ids printed at that time."""

    def __init__(self) -> None:
        self.at: str | None = None
        self.seen: set[str] = set()

    def advance(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        fresh = [e for e in events if not (e["at"] == self.at and e["id"] in self.seen)]
        for event in fresh:
            if event["at"] != self.at:
                self.at, self.seen = event["at"], set()
            self.seen.add(event["id"])
        return fresh


def _since(client: Client, filters: dict[str, Any], at: str | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    params = {**filters, "since": at, "limit": 500}
    cursor = None
    while True:
        page = client.call("GET", "/audit", params={**params, "cursor": cursor})
        found.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


class _Emitter:
    """Writes events where the options say: stdout or the file, and the syslog receiver."""

    def __init__(
        self, output: Output, fmt: Format | None, sink: IO[str] | None, sender: UdpSyslog | None
    ) -> None:
        self.output, self.fmt, self.sink, self.sender = output, fmt, sink, sender
        self.hostname = socket.gethostname()

    def __call__(self, events: list[dict[str, Any]]) -> None:
        if self.sender is not None:
            for event in events:
                self.sender.send(event)
        if self.fmt is None and self.sink is None:
            if self.output is Output.TABLE:
                if events:
                    table("audit", COLUMNS, [row(e) for e in events], IDS)
            else:
                stream(events, self.output)
            return
        lines = "".join(self._line(event) + "\n" for event in events)
        if self.sink is not None:
            self.sink.write(lines)
            self.sink.flush()
        else:
            typer.echo(lines, nl=False)

    def _line(self, event: dict[str, Any]) -> str:
        if self.fmt is Format.RFC5424:
            return rfc5424(event, self.hostname)
        return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
