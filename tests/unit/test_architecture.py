"""The hexagon's rules that import-linter cannot express (its contracts, in pyproject.toml, hold
every rule about who imports whom: ``uv run lint-imports``).

- The domain is plain synchronous Python: no ``async def``, ``await``, ``async for/with``.
- Time and randomness come through ports (``Clock``, ``RandomSource``): the domain and the
  application layer never read the wall clock or draw random values themselves, so lifecycle
  and rotation logic stays deterministic under a ``FakeClock``. Both may import ``datetime``
  and ``uuid`` for their types; it is the calls that are refused.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).parents[2] / "app"

WALL_CLOCK_AND_RANDOMNESS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("uuid", "uuid1"),
    ("uuid", "uuid4"),
    ("os", "urandom"),
}
RANDOM_MODULES = {"random", "secrets"}


def _files(layer: str) -> list[Path]:
    files = sorted((APP / layer).rglob("*.py"))
    assert files, f"no files in app/{layer}"
    return files


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), str(path))


def async_code(tree: ast.AST) -> list[int]:
    kinds = (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)
    return [node.lineno for node in ast.walk(tree) if isinstance(node, kinds)]


def clock_or_randomness(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in WALL_CLOCK_AND_RANDOMNESS:
                found.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
        elif isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name in RANDOM_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module in RANDOM_MODULES:
                found.append(f"from {node.module} import ...")
            elif node.module in {"datetime", "time", "uuid", "os"}:
                found += [
                    f"from {node.module} import {a.name}"
                    for a in node.names
                    if (node.module, a.name) in WALL_CLOCK_AND_RANDOMNESS
                ]
    return found


def test_the_domain_is_synchronous() -> None:
    offences = [
        f"{path.relative_to(APP)}:{line}"
        for path in _files("domain")
        for line in async_code(_tree(path))
    ]
    assert offences == []


@pytest.mark.parametrize("layer", ["domain", "application"])
def test_time_and_randomness_come_through_ports(layer: str) -> None:
    offences = [
        f"{path.relative_to(APP)}: {what}"
        for path in _files(layer)
        for what in clock_or_randomness(_tree(path))
    ]
    assert offences == []


@pytest.mark.parametrize(
    "source",
    [
        "from datetime import UTC, datetime\nnow = datetime.now(UTC)\n",
        "import uuid\nfresh = uuid.uuid4()\n",
        "import secrets\nnonce = secrets.token_bytes(12)\n",
        "from time import monotonic\n",
    ],
)
def test_the_rule_sees_a_direct_clock_or_random_call(source: str) -> None:
    assert clock_or_randomness(ast.parse(source))


def test_the_rule_sees_async_code() -> None:
    assert async_code(ast.parse("async def f() -> None:\n    await g()\n")) == [1, 2]
