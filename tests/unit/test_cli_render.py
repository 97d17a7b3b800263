"""What the admin commands print, without a server: problems as sentences with the server's text
kept whole (rich markup never eats square brackets), cells as ``-``/``yes``/``no``, and the
``-o/--output`` option on every admin command."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from rich.tree import Tree
from typer.main import get_command

from app.cli import cli
from app.cli._problems import print_problem, sentence
from app.cli._render import cell, table, whole


def problem(*errors: dict[str, Any], status: int = 422, **extra: Any) -> httpx.Response:
    body = {"reason": "INVALID_INPUT", "detail": "invalid request", "errors": list(errors)}
    return httpx.Response(status, json=body | extra)


def test_field_errors_are_sentences_and_keep_square_brackets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_problem(
        problem(
            {"field": "target", "location": "body", "type": "invalid", "message": "not [x]"},
            {
                "field": "code",
                "location": "body",
                "type": "string_pattern_mismatch",
                "message": "String should match pattern '^[a-z]{1,3}$'",
            },
            {
                "field": "limit",
                "location": "query",
                "type": "less_than_equal",
                "message": "Input should be less than or equal to 500",
            },
            detail="invalid request: items[0], [bold]x[/bold]",
        )
    )
    err = capsys.readouterr().err
    assert "error: 422 INVALID_INPUT: invalid request: items[0], [bold]x[/bold]" in err
    assert "  - target: not [x]." in err
    assert "  - code does not have the expected form." in err
    assert "  - limit (in the query) must be less than or equal to 500." in err


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"field": "name", "type": "missing", "message": "Field required"}, "name is required."),
        (
            {
                "field": "colour",
                "type": "extra_forbidden",
                "message": "Extra inputs are not permitted",
            },
            "colour is not a field this request takes.",
        ),
        (
            {"field": "operations.0", "type": "enum", "message": "Input should be 'a' or 'b'"},
            "operations.0 must be 'a' or 'b'.",
        ),
        (
            {"field": "table", "type": "string_pattern_mismatch", "message": "String should match"},
            "table must be an SQL identifier: a letter or '_' first, then letters, digits, '_' or "
            "'$', 63 characters at most.",
        ),
        (
            {"field": "x", "type": "value_error", "message": "Value error, must not contain NUL"},
            "x: must not contain NUL.",
        ),
    ],
)
def test_sentences(error: dict[str, Any], expected: str) -> None:
    assert sentence(error) == expected


def test_a_401_says_where_tokens_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    print_problem(
        problem(status=401, reason="UNAUTHENTICATED", detail="token signature is invalid")
    )
    err = capsys.readouterr().err
    assert "401 UNAUTHENTICATED: token signature is invalid" in err and "EKMS_DATA_DIR" in err


def test_a_problem_that_is_not_json_prints_its_status(capsys: pytest.CaptureFixture[str]) -> None:
    print_problem(httpx.Response(502, text="<html>bad gateway</html>"))
    assert "error: 502 : Bad Gateway" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "-"),
        ("", "-"),
        (True, "yes"),
        (False, "no"),
        (["a", "b"], "a,b"),
        (3, "3"),
        ({"k": 1}, '{"k": 1}'),
        ("[red]x[/red]", "[red]x[/red]"),
    ],
)
def test_cells(value: Any, shown: str) -> None:
    assert cell(value).plain == shown


def test_a_piped_table_keeps_every_value_whole(capsys: pytest.CaptureFixture[str]) -> None:
    ident = "e1ccdf33-ca41-4e5e-9fe7-2452da0f0a11"
    long = "y" * 200
    table("t", ["id", "note"], [[cell(ident), cell(long)]], frozenset({"id"}))
    printed = capsys.readouterr().out
    assert ident in printed and long in printed and "…" not in printed


def test_a_piped_tree_keeps_every_line_whole(capsys: pytest.CaptureFixture[str]) -> None:
    key = "arn:aws:kms:eu-west-1:111122223333:key/" + "e1ccdf33-ca41-4e5e-9fe7-2452da0f0a11" * 3
    tree = Tree("ekms key chain")
    tree.add(f"external key {key}")
    whole(tree)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].endswith(key)


def test_every_command_but_serve_takes_output() -> None:
    def leaves(command: Any, path: str) -> list[tuple[str, Any]]:
        if hasattr(command, "commands"):
            return [
                leaf
                for name, sub in command.commands.items()
                for leaf in leaves(sub, f"{path} {name}".strip())
            ]
        return [(path, command)]

    commands = [(p, c) for p, c in leaves(get_command(cli), "") if p != "serve"]
    assert len(commands) >= 32  # 27 admin, migrate, token and local-key's three
    for path, command in commands:
        options = {opt for param in command.params for opt in param.opts}
        assert {"-o", "--output"} <= options, path
