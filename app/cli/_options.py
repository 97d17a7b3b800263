"""The options the admin commands share, and the client they are given.

The root callback (``connect``) reads ``--url`` (``EKMS_URL``, default http://127.0.0.1:8080),
``--token`` (``EKMS_TOKEN``) and ``-o/--output`` once and keeps the ``Client`` in the typer
context; it also answers ``--version``. A command wrapped in ``with_client`` receives that client
as its first argument, and also takes ``--url``, ``--token`` and ``-o/--output`` after its own
name: given there, they replace the root's for that call. So both ``ekms --url U modules list``
and ``ekms modules list --url U`` work. ``--json`` (hidden) is ``-o json``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from rich.markup import escape

from app.cli._http import DEFAULT_URL, Client
from app.cli._render import Output, confirm, done

UrlOpt = Annotated[str, typer.Option("--url", envvar="EKMS_URL", help="ekms base URL")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="EKMS_TOKEN", help="bearer token", show_default=False),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
# A command's own --json (before -o): ``with_client`` then adds no hidden --json of its own.
JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]
_OUTPUT_HELP = "table, json or yaml (--all and streams: NDJSON in json)"
OutputOpt = Annotated[
    Output, typer.Option("--output", "-o", case_sensitive=False, help=_OUTPUT_HELP)
]

# After the command's name: no environment or default of their own, so that an unset one falls
# back to the root's value (which has both) instead of overriding a root --url with EKMS_URL.
_UrlAfter = Annotated[
    str | None,
    typer.Option(
        "--url", help=f"ekms base URL (EKMS_URL; default {DEFAULT_URL})", show_default=False
    ),
]
_TokenAfter = Annotated[
    str | None, typer.Option("--token", help="bearer token (EKMS_TOKEN)", show_default=False)
]
OutputAfterOpt = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        help=f"{_OUTPUT_HELP}; default table",
        show_default=False,
    ),
]
_JsonAfter = Annotated[bool, typer.Option("--json", hidden=True, help="same as -o json")]


def output_of(ctx: typer.Context, output: Output | None) -> Output:
    """The format for a command that runs ekms itself (no client): its own ``-o``, else the
    root's."""
    root = ctx.find_object(Client)
    return output or (root.output if root else Output.TABLE)


def _print_version(wanted: bool) -> None:
    if wanted:
        try:
            typer.echo(f"ekms {version('ekms')}")
        except PackageNotFoundError:  # pragma: no cover - run from a tree that is not installed
            typer.echo("ekms (not installed)")
        raise typer.Exit()


VersionOpt = Annotated[
    bool,
    typer.Option(
        "--version", is_eager=True, callback=_print_version, help="print the version and exit"
    ),
]


def connect(
    ctx: typer.Context,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
    _version: VersionOpt = False,
) -> None:
    """The root callback: the client every admin command is given."""
    ctx.obj = Client(url, token, output)


def with_client(command: Callable[..., None]) -> Callable[..., None]:
    """``command(client, ...)`` as a typer command function: ``client`` is the root's, with the
    command's own ``--url``/``--token``/``--output`` in its place when they are given."""
    signature = inspect.signature(command, eval_str=True)
    first, *rest = signature.parameters.values()
    if first.name != "client":
        raise TypeError(f"{command.__name__} must take the client as its first parameter")
    keyword = inspect.Parameter.KEYWORD_ONLY
    own_json = "as_json" in signature.parameters  # an older command with its own --json
    parameters = [
        inspect.Parameter("ctx", first.kind, annotation=typer.Context),
        *rest,
        inspect.Parameter("url", keyword, default=None, annotation=_UrlAfter),
        inspect.Parameter("token", keyword, default=None, annotation=_TokenAfter),
        inspect.Parameter("output", keyword, default=None, annotation=OutputAfterOpt),
    ]
    if not own_json:
        parameters.append(inspect.Parameter("json", keyword, default=False, annotation=_JsonAfter))

    @functools.wraps(command)
    def run(
        ctx: typer.Context,
        url: str | None,
        token: str | None,
        output: Output | None,
        json: bool = False,
        **kwargs: Any,
    ) -> None:
        root = ctx.find_object(Client) or Client(DEFAULT_URL, None)
        chosen = Output.JSON if json or kwargs.get("as_json") else output or root.output
        client = Client(
            root.url if url is None else url, root.token if token is None else token, chosen
        )
        command(client, **kwargs)

    # typer reads a command's parameters from its signature and annotations.
    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


def delete(client: Client, path: str, what: str, ident: str, *, yes: bool) -> None:
    """Ask (unless ``--yes``), delete the resource ``ident`` at ``path`` and say ``what`` is
    deleted (``{"id": ident, "deleted": true}`` in JSON or YAML)."""
    confirm(yes, f"Delete {what} {ident}?")
    client.call("DELETE", path)
    done(client.output, {"id": ident, "deleted": True}, f"{escape(what)} {escape(ident)} deleted")
