"""The options the admin commands share, and the client they are given.

The root callback (``connect``) reads ``--url`` (``EKMS_URL``, default http://127.0.0.1:8080) and
``--token`` (``EKMS_TOKEN``) once and keeps the ``Client`` in the typer context. A command wrapped
in ``with_client`` receives that client as its first argument, and also takes ``--url`` and
``--token`` after its own name: given there, they replace the root's for that call. So both
``ekms --url U modules list`` and ``ekms modules list --url U`` work.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from app.cli._http import DEFAULT_URL, Client
from app.cli._render import confirm, console

UrlOpt = Annotated[str, typer.Option("--url", envvar="EKMS_URL", help="ekms base URL")]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="EKMS_TOKEN", help="bearer token", show_default=False),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the raw JSON answer")]

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


def connect(ctx: typer.Context, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """The root callback: the client every admin command is given."""
    ctx.obj = Client(url, token)


def with_client(command: Callable[..., None]) -> Callable[..., None]:
    """``command(client, ...)`` as a typer command function: ``client`` is the root's, with the
    command's own ``--url``/``--token`` in its place when they are given."""
    signature = inspect.signature(command, eval_str=True)
    first, *rest = signature.parameters.values()
    if first.name != "client":
        raise TypeError(f"{command.__name__} must take the client as its first parameter")
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [
        inspect.Parameter("ctx", first.kind, annotation=typer.Context),
        *rest,
        inspect.Parameter("url", keyword, default=None, annotation=_UrlAfter),
        inspect.Parameter("token", keyword, default=None, annotation=_TokenAfter),
    ]

    @functools.wraps(command)
    def run(ctx: typer.Context, url: str | None, token: str | None, **kwargs: Any) -> None:
        root = ctx.find_object(Client) or Client(DEFAULT_URL, None)
        client = Client(root.url if url is None else url, root.token if token is None else token)
        command(client, **kwargs)

    # typer reads a command's parameters from its signature and annotations.
    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters}
    return run


def delete(client: Client, path: str, what: str, *, yes: bool) -> None:
    """Ask (unless ``--yes``), delete the resource at ``path`` and say ``what`` is deleted."""
    confirm(yes, f"Delete {what}?")
    client.call("DELETE", path)
    console.print(f"{what} deleted")
