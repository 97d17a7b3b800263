"""Rooms with one job stay small (issue 11): no module of the server (``app/``, generated code
aside) or of the client package is over 300 lines. A module that grows past it is a sign that
it holds two jobs; split it by job, not by line count."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).parents[2]
MAX_LINES = 300
TREES = (ROOT / "app", ROOT / "clients/python/src/ekms_client")
GENERATED = ("gen",)


def _modules() -> list[Path]:
    found = [
        path
        for tree in TREES
        for path in tree.rglob("*.py")
        if not any(part in GENERATED for part in path.relative_to(tree).parts)
    ]
    assert len(found) > 100  # the trees are where this test thinks they are
    return found


def test_no_module_is_over_300_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _modules()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
