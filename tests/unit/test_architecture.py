"""The hexagon's walls: the domain is pure, the application layer knows only ports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).parents[2] / "app"
FRAMEWORKS = {
    "fastapi",
    "starlette",
    "grpc",
    "sqlalchemy",
    "aiobotocore",
    "botocore",
    "apscheduler",
    "asyncpg",
    "aiosqlite",
    "uvicorn",
    "httpx",
    "jwt",
}
RULES = {
    "domain": FRAMEWORKS
    | {
        "app.application",
        "app.infra",
        "app.api",
        "app.grpc",
        "app.bootstrap",
        "structlog",
        "pydantic",
    },
    "application": FRAMEWORKS | {"app.infra", "app.api", "app.grpc", "app.bootstrap"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(RULES))
def test_layer_imports_nothing_outward(layer: str) -> None:
    files = sorted((APP / layer).rglob("*.py"))
    assert files, f"no files in app/{layer}"
    offences = []
    for path in files:
        for name in _imports(path):
            if any(name == banned or name.startswith(banned + ".") for banned in RULES[layer]):
                offences.append(f"{path.relative_to(APP)} imports {name}")
    assert offences == []
