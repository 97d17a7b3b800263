"""The admin commands' ``--url`` and ``--token``: read once by the root callback, and also taken
after a command's name, where they replace the root's (and an unset one never overrides it)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from app.cli import cli
from app.cli._http import DEFAULT_URL, Client
from app.cli._options import connect, with_client

probe = typer.Typer()
probe.callback()(connect)


@probe.command("show")
@with_client
def show(client: Client, name: str, loud: bool = typer.Option(False, "--loud")) -> None:
    typer.echo(f"{client.url} {client.token} {name} {loud}")


def shown(*args: str, **env: str) -> str:
    result = CliRunner().invoke(
        probe, list(args), env={"EKMS_URL": None, "EKMS_TOKEN": None, **env}
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout.strip()


E = {"EKMS_URL": "http://e", "EKMS_TOKEN": "te"}
CASES = {
    "defaults": ("show n", {}, f"{DEFAULT_URL} None n False"),
    "environment": ("show n", E, "http://e te n False"),
    "root-beats-environment": ("--url http://r --token tr show n", E, "http://r tr n False"),
    "after-the-command-beats-environment": (
        "show n --url http://c --token tc",
        E,
        "http://c tc n False",
    ),
    "after-the-command-beats-root-one-by-one": (
        "--url http://r --token tr show --url http://c n --loud",
        {},
        "http://c tr n True",
    ),
    "an-unset-one-keeps-the-root-value": (
        "--url http://r show n --token tc",
        {"EKMS_URL": "http://e"},
        "http://r tc n False",
    ),
}


@pytest.mark.parametrize(("args", "env", "expected"), CASES.values(), ids=CASES.keys())
def test_url_and_token_come_from_the_command_then_the_root_then_the_environment(
    args: str, env: dict[str, str], expected: str
) -> None:
    assert shown(*args.split(), **env) == expected


def test_every_admin_command_takes_url_and_token_after_its_name() -> None:
    def leaves(command: Any, path: str) -> list[tuple[str, Any]]:
        if hasattr(command, "commands"):  # a group (typer's own click: not click.Group)
            return [
                leaf
                for name, sub in command.commands.items()
                for leaf in leaves(sub, f"{path} {name}".strip())
            ]
        return [(path, command)]

    process = {"serve", "migrate", "token"}
    admin = [
        (path, command)
        for path, command in leaves(get_command(cli), "")
        if path not in process and not path.startswith("local-key")
    ]
    # 27 + keys external (3) + encrypt|decrypt|mac|rewrap + audit tail|verify|checkpoints
    # + policies explain, less audit itself (a group now) + xks stores (7) and xks keys (6)
    assert len(admin) == 50
    for path, command in admin:
        names = {param.name for param in command.params}
        assert {"url", "token"} <= names, path
        assert "client" not in names and "ctx" not in names, path


@pytest.mark.parametrize("where", ["root", "command"])
def test_the_real_cli_calls_the_url_given_before_or_after_the_command(where: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    args = ["--url", closed, "status"] if where == "root" else ["status", "--url", closed]
    result = CliRunner().invoke(cli, args, env={"EKMS_URL": "http://127.0.0.1:1"})
    assert result.exit_code == 1
    assert f"cannot reach ekms at {closed}" in result.stderr


def test_a_command_without_the_client_first_is_refused_when_declared() -> None:
    def broken(name: str) -> None: ...

    with pytest.raises(TypeError, match="client"):
        with_client(broken)
